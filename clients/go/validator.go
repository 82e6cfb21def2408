package p2pmq

import (
	"context"
	"net"

	"google.golang.org/grpc"

	pb "p2pmq.dev/clients/go/p2pmqpb"
)

// The verdicts a validator returns.
const (
	Accept = pb.Verdict_VERDICT_ACCEPT // deliver and forward
	Ignore = pb.Verdict_VERDICT_IGNORE // drop without penalty
	Reject = pb.Verdict_VERDICT_REJECT // drop and penalise the sender (gossipsub P4)
)

// ValidateFunc judges one message. It is called from one goroutine per agent stream.
type ValidateFunc func(ctx context.Context, m *pb.Message) pb.Verdict

// Validator serves MsgValidation: the agent (started with --validator ADDR) dials it and sends
// every message that needs a verdict.
type Validator struct {
	server   *grpc.Server
	listener net.Listener
	done     chan struct{}
}

type validationService struct {
	pb.UnimplementedMsgValidationServer
	validate ValidateFunc
}

// ValidationChannel answers each message of the agent's stream in turn.
func (s *validationService) ValidationChannel(stream pb.MsgValidation_ValidationChannelServer) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil // the agent closed the stream (or went away): it reconnects by itself
		}
		verdict := s.validate(stream.Context(), m)
		if err := stream.Send(&pb.ValidatedMessage{Id: m.GetId(), Verdict: verdict}); err != nil {
			return err
		}
	}
}

// ServeValidator listens on address (host:port; port 0 picks one, see Addr) and serves
// MsgValidation with validate until Stop.
func ServeValidator(address string, validate ValidateFunc, opts ...grpc.ServerOption) (*Validator, error) {
	lis, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	v := &Validator{server: grpc.NewServer(opts...), listener: lis, done: make(chan struct{})}
	pb.RegisterMsgValidationServer(v.server, &validationService{validate: validate})
	go func() {
		defer close(v.done)
		_ = v.server.Serve(lis)
	}()
	return v, nil
}

// Addr is the address the validator listens on, for the agent's --validator.
func (v *Validator) Addr() string { return v.listener.Addr().String() }

// Stop ends the server and its streams.
func (v *Validator) Stop() {
	v.server.Stop()
	<-v.done
}
