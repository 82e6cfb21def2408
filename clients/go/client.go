// Package p2pmq is a Go client of a p2pmq agent's gRPC API (proto/p2pmq/v1/p2pmq.proto):
// Publish, Listen, Subscribe/Unsubscribe and Status, and ServeValidator for the MsgValidation
// service the agent dials. The generated types are in p2pmq.dev/clients/go/p2pmqpb.
package p2pmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "p2pmq.dev/clients/go/p2pmqpb"
)

// Client talks to one agent over one gRPC connection. Safe for concurrent use.
type Client struct {
	conn      *grpc.ClientConn
	messaging pb.MessagingClient
	control   pb.ControlClient
	admin     pb.AdminClient
}

// Dial connects to the agent's gRPC address (host:port, the agent's --grpc). Without options the
// connection is plaintext: the agent's API is meant for a local application. The connection is
// made lazily, on the first call.
func Dial(address string, opts ...grpc.DialOption) (*Client, error) {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(address, opts...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:      conn,
		messaging: pb.NewMessagingClient(conn),
		control:   pb.NewControlClient(conn),
		admin:     pb.NewAdminClient(conn),
	}, nil
}

// Close closes the connection; open Listen streams end with it.
func (c *Client) Close() error { return c.conn.Close() }

// Publish broadcasts data on topic and returns the message id and the seqno the agent gave it.
func (c *Client) Publish(ctx context.Context, topic string, data []byte) (*pb.PublishResponse, error) {
	return c.messaging.Publish(ctx, &pb.PublishRequest{Topic: topic, Data: data})
}

// Subscribe makes the agent join topic (idempotent).
func (c *Client) Subscribe(ctx context.Context, topic string) error {
	_, err := c.control.Subscribe(ctx, &pb.SubscribeRequest{Topic: topic})
	return err
}

// Unsubscribe makes the agent leave topic (idempotent).
func (c *Client) Unsubscribe(ctx context.Context, topic string) error {
	_, err := c.control.Unsubscribe(ctx, &pb.UnsubscribeRequest{Topic: topic})
	return err
}

// Status describes the agent: identity, addresses, peers with scores, topics, sync state.
func (c *Client) Status(ctx context.Context) (*pb.StatusResponse, error) {
	return c.admin.Status(ctx, &pb.StatusRequest{})
}

// TopicOrigin names one origin's messages on one topic.
type TopicOrigin struct {
	Topic  string
	Origin string
}

// Cursor is how far a client has durably processed each origin's messages: the last seqno per
// (topic, origin). Passed to Listen (ListenOptions.Resume), the agent delivers what follows;
// exactly once needs an ordered stream (see ListenRequest's cursor in the proto).
type Cursor map[TopicOrigin]uint64

// Advance records a Message (its seqno) or a Gap (its to_seqno) of a Listen stream as processed;
// Missed events and messages without an origin or seqno are not tracked.
func (c Cursor) Advance(ev *pb.ListenEvent) {
	var key TopicOrigin
	var seqno uint64
	if m := ev.GetMessage(); m != nil {
		key, seqno = TopicOrigin{m.GetTopic(), m.GetOrigin()}, m.GetSeqno()
	} else if g := ev.GetGap(); g != nil {
		key, seqno = TopicOrigin{g.GetTopic(), g.GetOrigin()}, g.GetToSeqno()
	}
	if key.Origin != "" && seqno > c[key] {
		c[key] = seqno
	}
}

// ListenOptions are the optional parts of a Listen request.
type ListenOptions struct {
	// BufferSize is the stream's buffer in messages (0: the agent's default).
	BufferSize uint32
	// Ordered asks for per-origin seqno order (see ListenRequest.ordered).
	Ordered bool
	// Resume is the position to resume from; needs an agent whose API has the resume cursor.
	Resume Cursor
}

// ErrNoResumeCursor is returned by Listen with a Resume cursor when the API this client was
// generated from has no resume cursor in ListenRequest.
var ErrNoResumeCursor = errors.New("p2pmq: this API version has no resume cursor in ListenRequest")

// setResume maps cursor onto ListenRequest's resume field, found by its shape rather than its
// name so the client works with and without it: a repeated message field whose messages have
// string fields topic and origin and a uint64 field (the seqno).
func setResume(m protoreflect.Message, cursor Cursor) error {
	if len(cursor) == 0 {
		return nil
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if !f.IsList() || f.Message() == nil {
			continue
		}
		entry := f.Message().Fields()
		topic, origin := entry.ByName("topic"), entry.ByName("origin")
		var seqno protoreflect.FieldDescriptor
		for j := 0; j < entry.Len(); j++ {
			if entry.Get(j).Kind() == protoreflect.Uint64Kind && !entry.Get(j).IsList() {
				seqno = entry.Get(j)
				break
			}
		}
		if topic == nil || origin == nil || seqno == nil {
			continue
		}
		list := m.Mutable(f).List()
		for k, s := range cursor {
			e := list.NewElement()
			e.Message().Set(topic, protoreflect.ValueOfString(k.Topic))
			e.Message().Set(origin, protoreflect.ValueOfString(k.Origin))
			e.Message().Set(seqno, protoreflect.ValueOfUint64(s))
			list.Append(e)
		}
		return nil
	}
	return ErrNoResumeCursor
}

// Stream is an open Listen stream.
type Stream struct {
	stream pb.Messaging_ListenClient
	cancel context.CancelFunc
}

// Listen opens a stream of topics' messages. It returns once the agent has registered the
// listener (it sends the response headers then): what is published after that reaches it.
func (c *Client) Listen(ctx context.Context, topics []string, opts ListenOptions) (*Stream, error) {
	req := &pb.ListenRequest{Topics: topics, BufferSize: opts.BufferSize, Ordered: opts.Ordered}
	if err := setResume(req.ProtoReflect(), opts.Resume); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s, err := c.messaging.Listen(ctx, req)
	if err == nil {
		var md map[string][]string
		if md, err = s.Header(); err == nil && md == nil {
			// Ended without headers (refused, e.g. INVALID_ARGUMENT): Recv has the status.
			if _, err = s.Recv(); err == nil || errors.Is(err, io.EOF) {
				err = errors.New("the agent ended the stream at once")
			}
		}
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("p2pmq: listen %v: %w", topics, err)
	}
	return &Stream{stream: s, cancel: cancel}, nil
}

// Recv returns the next event: a Message, a Missed (messages lost to a full buffer) or a Gap
// (seqnos that will not be delivered); io.EOF when the agent ended the stream.
func (s *Stream) Recv() (*pb.ListenEvent, error) { return s.stream.Recv() }

// Events iterates over the stream's events until it ends; a final non-nil error is yielded
// unless the stream ended normally (io.EOF) or was closed.
func (s *Stream) Events() iter.Seq2[*pb.ListenEvent, error] {
	return func(yield func(*pb.ListenEvent, error) bool) {
		for {
			ev, err := s.stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) && s.stream.Context().Err() == nil {
					yield(nil, err)
				}
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// Close cancels the stream.
func (s *Stream) Close() { s.cancel() }
