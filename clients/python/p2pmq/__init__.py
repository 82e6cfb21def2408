"""A Python client of a p2pmq agent's gRPC API (proto/p2pmq/v1/p2pmq.proto).

    import p2pmq
    client = p2pmq.Client("127.0.0.1:5001")
    client.publish("prices", b"42")
    with client.listen(["prices"]) as stream:   # returns once the agent registered the stream
        for event in stream:                    # p2pmq.pb.Message, .Missed or .Gap
            ...

serve_validator(callback) serves MsgValidation (the agent dials it, --validator ADDR) with a
callback that returns ACCEPT, REJECT or IGNORE. The generated messages are in p2pmq.pb and the
gRPC stubs in p2pmq.rpc (made at import time from the proto, see _stubs.py).
"""
from concurrent import futures

from . import _stubs

pb, rpc = _stubs.load(__path__)

import grpc  # noqa: E402  (after _stubs, which explains a missing grpcio)

ACCEPT = pb.VERDICT_ACCEPT  # deliver and forward
IGNORE = pb.VERDICT_IGNORE  # drop without penalty
REJECT = pb.VERDICT_REJECT  # drop and penalise the sender (gossipsub P4)

__all__ = ["Client", "ListenStream", "advance", "set_resume", "Validator", "serve_validator",
           "NoResumeCursor", "ACCEPT", "IGNORE", "REJECT", "pb", "rpc"]


class NoResumeCursor(ValueError):
    """listen(resume=...) with an API version whose ListenRequest has no resume cursor."""


def set_resume(request, cursor):
    """Maps cursor, {(topic, origin): seqno} (the last seqno processed per origin), onto the
    ListenRequest's resume field. The field is found by its shape rather than its name, so this
    works with and without it: a repeated message field whose messages have string fields topic
    and origin and a uint64 field (the seqno)."""
    if not cursor:
        return
    FD = request.DESCRIPTOR.fields[0].__class__
    for field in request.DESCRIPTOR.fields:
        entry = field.message_type
        if field.label != FD.LABEL_REPEATED or entry is None or entry.GetOptions().map_entry:
            continue
        names = entry.fields_by_name
        seqno = next((f for f in entry.fields
                      if f.type == FD.TYPE_UINT64 and f.label != FD.LABEL_REPEATED), None)
        if "topic" not in names or "origin" not in names or seqno is None:
            continue
        for (topic, origin), s in cursor.items():
            getattr(request, field.name).add(**{"topic": topic, "origin": origin,
                                                seqno.name: s})
        return
    raise NoResumeCursor("this API version has no resume cursor in ListenRequest")


def advance(cursor, event):
    """Records a Message (its seqno) or a Gap (its to_seqno) of a Listen stream as processed in
    cursor, {(topic, origin): seqno}; other events and messages without an origin are ignored.
    Exactly once needs an ordered stream (see ListenRequest's cursor in the proto)."""
    seqno = getattr(event, "seqno", None) if isinstance(event, pb.Message) else \
        getattr(event, "to_seqno", None) if isinstance(event, pb.Gap) else None
    if seqno and event.origin:
        key = (event.topic, event.origin)
        cursor[key] = max(cursor.get(key, 0), seqno)
    return cursor


class ListenStream:
    """An open Listen stream: iterate it for events (pb.Message, pb.Missed, pb.Gap); cancel()
    or leaving a `with` block ends it."""

    def __init__(self, call):
        self._call = call
        self._cancelled = False

    def __iter__(self):
        try:
            for ev in self._call:
                yield getattr(ev, ev.WhichOneof("event"))
        except grpc.RpcError as e:
            if not (self._cancelled and e.code() == grpc.StatusCode.CANCELLED):
                raise

    def messages(self):
        """Only the messages (skips Missed and Gap events)."""
        return (ev for ev in self if isinstance(ev, pb.Message))

    def cancel(self):
        self._cancelled = True
        self._call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()


class Client:
    """A client of one agent (its --grpc address). Thread-safe; close() ends its channel."""

    def __init__(self, address="127.0.0.1:5001", timeout=30.0, channel=None):
        self.channel = channel if channel is not None else grpc.insecure_channel(address)
        self.timeout = timeout  # seconds, for the unary calls
        self._messaging = rpc.MessagingStub(self.channel)
        self._control = rpc.ControlStub(self.channel)
        self._admin = rpc.AdminStub(self.channel)

    def publish(self, topic, data):
        """Broadcasts data (bytes, or str as UTF-8); returns pb.PublishResponse (id, seqno)."""
        if isinstance(data, str):
            data = data.encode()
        return self._messaging.Publish(pb.PublishRequest(topic=topic, data=data),
                                       timeout=self.timeout)

    def listen(self, topics, buffer_size=0, ordered=False, resume=None):
        """Opens a Listen stream and returns once the agent registered it (what is published
        after that reaches it). resume: {(topic, origin): seqno} to resume after (needs an API
        with the resume cursor, else NoResumeCursor). A refused request (grpc.RpcError, e.g.
        INVALID_ARGUMENT) raises here or, when grpcio sees the stream's end only after its
        headers, from the first iteration."""
        if isinstance(topics, str):
            topics = [topics]
        request = pb.ListenRequest(topics=list(topics), buffer_size=buffer_size, ordered=ordered)
        set_resume(request, resume)
        call = self._messaging.Listen(request)
        call.initial_metadata()  # the agent sends the headers once the stream is registered
        if call.done() and call.code() != grpc.StatusCode.OK:
            raise call  # the call is the RpcError (e.g. INVALID_ARGUMENT)
        return ListenStream(call)

    def subscribe(self, topic):
        self._control.Subscribe(pb.SubscribeRequest(topic=topic), timeout=self.timeout)

    def unsubscribe(self, topic):
        self._control.Unsubscribe(pb.UnsubscribeRequest(topic=topic), timeout=self.timeout)

    def status(self):
        """pb.StatusResponse: identity, addresses, peers with scores, topics, sync state."""
        return self._admin.Status(pb.StatusRequest(), timeout=self.timeout)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _ValidationService(rpc.MsgValidationServicer):
    def __init__(self, callback):
        self.callback = callback

    def ValidationChannel(self, request_iterator, context):
        # One stream per agent; each verdict carries the message id.
        for msg in request_iterator:
            yield pb.ValidatedMessage(id=msg.id, verdict=self.callback(msg))


class Validator:
    """A running MsgValidation server; `address` is what the agent's --validator takes."""

    def __init__(self, server, address):
        self.server = server
        self.address = address

    def stop(self, grace=1.0):
        self.server.stop(grace).wait()

    def wait(self):
        self.server.wait_for_termination()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve_validator(callback, address="127.0.0.1:0", workers=16):
    """Serves MsgValidation on address (port 0 picks one) with callback(pb.Message) returning
    ACCEPT, REJECT or IGNORE; called on one thread per agent stream (workers: how many agent
    streams at once)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    rpc.add_MsgValidationServicer_to_server(_ValidationService(callback), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as e:  # grpcio raises this (newer) or returns 0 (older) on failure
        raise OSError("cannot listen on %s: %s" % (address, e)) from e
    if port == 0:
        raise OSError("cannot listen on " + address)
    server.start()
    return Validator(server, "%s:%d" % (address.rsplit(":", 1)[0], port))


