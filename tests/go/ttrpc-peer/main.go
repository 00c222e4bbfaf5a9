// ttrpc-peer is the Go side of the ttrpc interop tests: containerd's own ttrpc (Debian's
// golang-github-containerd-ttrpc-dev) as a server for our TypeScript client, and as a client
// of our TypeScript server. Every payload is a Blob {bytes data = 1}.
//
//	ttrpc-peer golden            print Go's encodings of fixed Request/Response values (hex)
//	ttrpc-peer serve SOCKET      serve service ateom.test.Peer on SOCKET until stdin closes
//	ttrpc-peer call SOCKET       run the client script against SOCKET, one JSON line per step
//	ttrpc-peer bench SOCKET CALLS CONCURRENCY SIZE
//	                             time CALLS Echo calls of SIZE bytes; print nanoseconds
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const service = "ateom.test.Peer"

// Blob is the only payload message: raw bytes in field 1.
type Blob struct {
	Data []byte `protobuf:"bytes,1,opt,name=data,proto3"`
}

func (m *Blob) Reset()         { *m = Blob{} }
func (m *Blob) String() string { return fmt.Sprintf("Blob(%d bytes)", len(m.Data)) }
func (*Blob) ProtoMessage()    {}

func main() {
	if len(os.Args) < 2 {
		fatal("usage: ttrpc-peer golden | serve SOCKET | call SOCKET")
	}
	switch os.Args[1] {
	case "golden":
		golden()
	case "serve":
		need(3)
		serve(os.Args[2])
	case "call":
		need(3)
		call(os.Args[2])
	case "bench":
		need(6)
		bench(os.Args[2], atoi(os.Args[3]), atoi(os.Args[4]), atoi(os.Args[5]))
	default:
		fatal("unknown mode " + os.Args[1])
	}
}

func need(n int) {
	if len(os.Args) < n {
		fatal("missing SOCKET argument")
	}
}

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "ttrpc-peer: "+msg)
	os.Exit(2)
}

func golden() {
	req := &ttrpc.Request{
		Service:     "svc",
		Method:      "M",
		Payload:     []byte{1, 2},
		TimeoutNano: 1000000000,
		Metadata:    []*ttrpc.KeyValue{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}},
	}
	resp := &ttrpc.Response{Status: &spb.Status{Code: 5, Message: "nf"}, Payload: []byte{9}}
	ok := &ttrpc.Response{Status: status.New(codes.OK, "").Proto()}
	for _, m := range []proto.Message{req, resp, ok} {
		b, err := proto.Marshal(m)
		if err != nil {
			fatal(err.Error())
		}
		fmt.Println(hex.EncodeToString(b))
	}
}

// blockResults carries what a Block handler saw when its context ended, for LastBlock.
var blockResults = make(chan string, 16)

func serve(socket string) {
	listener, err := net.Listen("unix", socket)
	if err != nil {
		fatal(err.Error())
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		fatal(err.Error())
	}
	server.Register(service, map[string]ttrpc.Method{
		"Echo": handler(func(ctx context.Context, in []byte) ([]byte, error) { return in, nil }),
		// Data "code:message" -> that status.
		"Fail": handler(func(ctx context.Context, in []byte) ([]byte, error) {
			parts := strings.SplitN(string(in), ":", 2)
			code, _ := strconv.Atoi(parts[0])
			return nil, status.Error(codes.Code(code), parts[1])
		}),
		// Replies with the deadline the server derived from timeout_nano: "none" or "set".
		"Deadline": handler(func(ctx context.Context, in []byte) ([]byte, error) {
			dl, ok := ctx.Deadline()
			if !ok {
				return []byte("none"), nil
			}
			if time.Until(dl) <= 0 {
				return []byte("expired"), nil
			}
			return []byte("set"), nil
		}),
		// Waits for the context to end, records why, answers with that error.
		"Block": handler(func(ctx context.Context, in []byte) ([]byte, error) {
			<-ctx.Done()
			_, hasDeadline := ctx.Deadline()
			blockResults <- fmt.Sprintf("deadline=%v err=%v", hasDeadline, ctx.Err())
			return nil, ctx.Err()
		}),
		"LastBlock": handler(func(ctx context.Context, in []byte) ([]byte, error) {
			select {
			case r := <-blockResults:
				return []byte(r), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}),
		// Data is a decimal size: replies with that many bytes (i*7 mod 256).
		"Big": handler(func(ctx context.Context, in []byte) ([]byte, error) {
			n, err := strconv.Atoi(string(in))
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "size %q: %v", in, err)
			}
			return pattern(n), nil
		}),
		// Replies with the request metadata as sorted "key=v1,v2" lines.
		"Metadata": handler(func(ctx context.Context, in []byte) ([]byte, error) {
			md, _ := ttrpc.GetMetadata(ctx)
			var lines []string
			for k, vs := range md {
				lines = append(lines, k+"="+strings.Join(vs, ","))
			}
			sort.Strings(lines)
			return []byte(strings.Join(lines, "\n")), nil
		}),
	})
	go func() {
		// The test closes our stdin to stop us.
		io.Copy(io.Discard, os.Stdin)
		server.Close()
		os.Exit(0)
	}()
	fmt.Println("ready")
	if err := server.Serve(context.Background(), listener); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
		fatal(err.Error())
	}
}

func handler(fn func(ctx context.Context, in []byte) ([]byte, error)) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
		var req Blob
		if err := unmarshal(&req); err != nil {
			return nil, err
		}
		out, err := fn(ctx, req.Data)
		if err != nil {
			return nil, err
		}
		return &Blob{Data: out}, nil
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// step is one line of the client script's output.
type step struct {
	Step    string `json:"step"`
	Code    uint32 `json:"code"`
	Message string `json:"message,omitempty"`
	Data    string `json:"data,omitempty"`
	Ok      bool   `json:"ok,omitempty"`
}

func call(socket string) {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		fatal(err.Error())
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	emit := func(s step) {
		b, _ := json.Marshal(s)
		out.Write(append(b, '\n'))
	}
	invoke := func(ctx context.Context, method string, in []byte) ([]byte, *status.Status) {
		var resp Blob
		err := client.Call(ctx, service, method, &Blob{Data: in}, &resp)
		return resp.Data, status.Convert(err)
	}
	bg := context.Background()

	data, st := invoke(bg, "Echo", []byte("hello from go"))
	emit(step{Step: "echo", Code: uint32(st.Code()), Message: st.Message(), Data: string(data)})

	md := ttrpc.MD{}
	md.Set("trace", "a", "b")
	data, st = invoke(ttrpc.WithMetadata(bg, md), "Metadata", nil)
	emit(step{Step: "metadata", Code: uint32(st.Code()), Data: string(data)})

	// 40 concurrent calls; the TS handler answers in reverse arrival order.
	var wg sync.WaitGroup
	results := make([]bool, 40)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			want := []byte(fmt.Sprintf("call-%d", i))
			got, st := invoke(bg, "Gate", want)
			results[i] = st.Code() == codes.OK && bytes.Equal(got, want)
		}(i)
	}
	wg.Wait()
	all := true
	for _, ok := range results {
		all = all && ok
	}
	emit(step{Step: "concurrent", Ok: all})

	_, st = invoke(bg, "Fail", []byte("5:container c1 not found"))
	emit(step{Step: "fail", Code: uint32(st.Code()), Message: st.Message()})

	_, st = invoke(bg, "NoSuchMethod", nil)
	emit(step{Step: "unimplemented", Code: uint32(st.Code()), Message: st.Message()})

	ctx, cancel := context.WithTimeout(bg, 150*time.Millisecond)
	_, st = invoke(ctx, "Block", nil)
	cancel()
	emit(step{Step: "deadline", Code: uint32(st.Code()), Message: st.Message()})
	data, st = invoke(bg, "LastBlock", nil)
	emit(step{Step: "deadline-seen", Code: uint32(st.Code()), Data: string(data)})

	big := pattern(4<<20 - 64)
	data, st = invoke(bg, "Echo", big)
	emit(step{Step: "big", Code: uint32(st.Code()), Message: st.Message(), Ok: bytes.Equal(data, big)})

	_, st = invoke(bg, "Echo", pattern(4<<20+1))
	emit(step{Step: "too-big", Code: uint32(st.Code()), Message: st.Message()})

	data, st = invoke(bg, "Echo", []byte("still alive"))
	emit(step{Step: "after", Code: uint32(st.Code()), Data: string(data)})
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fatal(err.Error())
	}
	return n
}

func bench(socket string, calls, concurrency, size int) {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		fatal(err.Error())
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	payload := &Blob{Data: pattern(size)}
	next := make(chan struct{}, calls)
	for i := 0; i < calls; i++ {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				var resp Blob
				if err := client.Call(context.Background(), service, "Echo", payload, &resp); err != nil {
					fatal(err.Error())
				}
			}
		}()
	}
	wg.Wait()
	fmt.Println(time.Since(start).Nanoseconds())
}
