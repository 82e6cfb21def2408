package p2pmq

import (
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	pb "p2pmq.dev/clients/go/p2pmqpb"
)

// listenRequestWithCursor is ListenRequest as a later API version may have it: with
// `repeated ResumePosition resume = 15` (topic, origin, uint64 after_seqno).
func listenRequestWithCursor(t *testing.T) *dynamicpb.Message {
	// A file of its own with a copy of ListenRequest (scalar fields only) and the new message.
	listen := protodesc.ToDescriptorProto(pb.File_p2pmq_v1_p2pmq_proto.Messages().ByName("ListenRequest"))
	file := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("p2pmq/v1/p2pmq_with_cursor.proto"),
		Package:     proto.String("p2pmq.withcursor"),
		Syntax:      proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{listen},
	}
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	optional := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	file.MessageType = append(file.MessageType, &descriptorpb.DescriptorProto{
		Name: proto.String("ResumePosition"),
		Field: []*descriptorpb.FieldDescriptorProto{
			{Name: proto.String("topic"), Number: proto.Int32(1), Type: str, Label: optional},
			{Name: proto.String("origin"), Number: proto.Int32(2), Type: str, Label: optional},
			{Name: proto.String("after_seqno"), Number: proto.Int32(3), Type: descriptorpb.FieldDescriptorProto_TYPE_UINT64.Enum(), Label: optional},
		},
	})
	for _, m := range file.MessageType {
		if m.GetName() == "ListenRequest" {
			m.Field = append(m.Field, &descriptorpb.FieldDescriptorProto{
				Name: proto.String("resume"), Number: proto.Int32(15), Label: descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum(),
				Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(".p2pmq.withcursor.ResumePosition"),
			})
		}
	}
	fd, err := protodesc.NewFile(file, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return dynamicpb.NewMessage(fd.Messages().ByName("ListenRequest"))
}

func TestResumeCursorIsMappedOntoTheFieldWhenTheAPIHasIt(t *testing.T) {
	req := listenRequestWithCursor(t)
	cursor := Cursor{{"t", "A"}: 7, {"u", "B"}: 9}
	if err := setResume(req, cursor); err != nil {
		t.Fatal(err)
	}
	list := req.Get(req.Descriptor().Fields().ByName("resume")).List()
	var got []string
	for i := 0; i < list.Len(); i++ {
		e := list.Get(i).Message()
		f := e.Descriptor().Fields()
		got = append(got, e.Get(f.ByName("topic")).String()+"/"+e.Get(f.ByName("origin")).String()+"/"+
			e.Get(f.ByName("after_seqno")).String())
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"t/A/7", "u/B/9"}) {
		t.Fatalf("resume = %v", got)
	}
}

func TestResumeCursorWithoutTheFieldIsRefused(t *testing.T) {
	req := &pb.ListenRequest{Topics: []string{"t"}}
	if err := setResume(req.ProtoReflect(), nil); err != nil {
		t.Fatalf("no cursor: %v", err)
	}
	for i := 0; i < req.ProtoReflect().Descriptor().Fields().Len(); i++ {
		if req.ProtoReflect().Descriptor().Fields().Get(i).Message() != nil {
			t.Skip("this API has a message field in ListenRequest")
		}
	}
	if err := setResume(req.ProtoReflect(), Cursor{{"t", "A"}: 1}); !errors.Is(err, ErrNoResumeCursor) {
		t.Fatalf("err = %v, want ErrNoResumeCursor", err)
	}
}
