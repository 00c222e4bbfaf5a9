// Command ateomclient is a grpc-go client (the library atelet uses) for the API tests. It reads
// calls as JSON lines on stdin and prints one JSON result per call:
//
//	{"path": "/ateom.Ateom/RunWorkload", "request": BASE64, "timeout_ms": 5000}
//	-> {"code": 3, "message": "...", "response": BASE64}
//	{"reflect": "list"}      -> {"services": ["ateom.Ateom", ...]}   (grpc-go's v1alpha client)
//	{"reflect": "ateom.Ateom"} -> {"file": NAME, "methods": [...]}   (file_containing_symbol)
//
// Messages are raw serialized protobuf bytes (a pass-through codec); the tests encode them.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/golang/protobuf/proto"
	descpb "github.com/golang/protobuf/protoc-gen-go/descriptor"
	"google.golang.org/grpc"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
)

type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

type call struct {
	Path      string `json:"path"`
	Request   []byte `json:"request"`
	TimeoutMs int    `json:"timeout_ms"`
	Reflect   string `json:"reflect"`
}

func main() {
	conn, err := grpc.Dial("unix://"+os.Args[1], grpc.WithInsecure())
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	defer conn.Close()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var c call
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintln(os.Stderr, "bad input:", err)
			os.Exit(1)
		}
		if c.Reflect != "" {
			_ = out.Encode(reflect(conn, c.Reflect))
			continue
		}
		timeout := time.Duration(c.TimeoutMs) * time.Millisecond
		if timeout == 0 {
			timeout = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		req, resp := c.Request, []byte(nil)
		err := conn.Invoke(ctx, c.Path, &req, &resp, grpc.ForceCodec(rawCodec{}))
		cancel()
		st := status.Convert(err)
		_ = out.Encode(map[string]interface{}{"code": int(st.Code()), "message": st.Message(), "response": resp})
	}
}

func reflect(conn *grpc.ClientConn, what string) map[string]interface{} {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return map[string]interface{}{"error": err.Error()}
	}
	req := &rpb.ServerReflectionRequest{Host: "localhost"}
	if what == "list" {
		req.MessageRequest = &rpb.ServerReflectionRequest_ListServices{ListServices: "*"}
	} else {
		req.MessageRequest = &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: what}
	}
	if err := stream.Send(req); err != nil {
		return map[string]interface{}{"error": err.Error()}
	}
	resp, err := stream.Recv()
	if err != nil {
		return map[string]interface{}{"error": err.Error()}
	}
	_ = stream.CloseSend()
	if what == "list" {
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		return map[string]interface{}{"services": names}
	}
	fds := resp.GetFileDescriptorResponse().GetFileDescriptorProto()
	if len(fds) == 0 {
		return map[string]interface{}{"error": fmt.Sprint(resp.GetErrorResponse())}
	}
	var fd descpb.FileDescriptorProto
	if err := proto.Unmarshal(fds[0], &fd); err != nil {
		return map[string]interface{}{"error": err.Error()}
	}
	var methods []string
	for _, s := range fd.GetService() {
		for _, m := range s.GetMethod() {
			methods = append(methods, s.GetName()+"."+m.GetName()+"("+m.GetInputType()+")")
		}
	}
	return map[string]interface{}{"file": fd.GetName(), "methods": methods}
}
