// Command bench_go is the Go side of benches/sdk/bench.sh: search round trips through
// the Go SDK (agentdb.Client.Search) and through raw gRPC (the generated agentdbpb
// ItemsClient on a plain grpc.ClientConn), on the same server, collection and query
// vectors. Variants alternate A B / B A per round. One JSON line per measurement.
//
//	bench_go -grpc HOST:PORT -collection C -queries Q.json -k 10
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	agentdb "github.com/agentdb/agentdb/sdk/go"
	pb "github.com/agentdb/agentdb/sdk/go/agentdbpb"
	"google.golang.org/grpc"
)

type searchFn func(ctx context.Context, q []float32) (int, error)

func pct(sorted []float64, p float64) float64 {
	i := int(p/100*float64(len(sorted)-1) + 0.5)
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func emit(m map[string]interface{}) {
	b, _ := json.Marshal(m)
	fmt.Println(string(b))
}

func main() {
	addr := flag.String("grpc", "", "server gRPC address")
	coll := flag.String("collection", "", "collection")
	qpath := flag.String("queries", "", "JSON file: a list of query vectors")
	k := flag.Int("k", 10, "top k")
	n := flag.Int("n", 2000, "sequential searches per latency measurement")
	warmup := flag.Int("warmup", 200, "warm-up searches")
	conc := flag.Int("concurrency", 8, "in-flight requests for throughput")
	seconds := flag.Float64("seconds", 3, "per throughput measurement")
	rounds := flag.Int("rounds", 2, "each round runs every client; order alternates")
	caseName := flag.String("case", "", "label")
	flag.Parse()
	if *addr == "" || *coll == "" || *qpath == "" {
		log.Fatal("-grpc, -collection and -queries are required")
	}
	raw, err := os.ReadFile(*qpath)
	if err != nil {
		log.Fatal(err)
	}
	var queries [][]float32
	if err := json.Unmarshal(raw, &queries); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// Raw gRPC: the generated client, as a user without the SDK would write it (same
	// request as the SDK's defaults: payloads, no vectors). Every client hands the caller
	// (id, score, payload as a map), so the raw baseline decodes the payload JSON as the
	// SDK does.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := grpc.DialContext(dctx, *addr, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	items := pb.NewItemsClient(conn)
	rawSearch := func(ctx context.Context, q []float32) (int, error) {
		r, err := items.Search(ctx, &pb.SearchRequest{Collection: *coll, Vector: &pb.Vector{Values: q}, TopK: uint32(*k), WithPayload: true})
		if err != nil {
			return 0, err
		}
		s := 0
		for _, h := range r.Hits {
			var payload map[string]interface{}
			if h.PayloadJson != "" {
				if err := json.Unmarshal([]byte(h.PayloadJson), &payload); err != nil {
					return 0, err
				}
			}
			s += len(h.Id) + len(payload)
		}
		return s, nil
	}

	// The SDK, default settings (retries on).
	c, err := agentdb.Dial(ctx, *addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	sdkSearch := func(ctx context.Context, q []float32) (int, error) {
		hits, err := c.Search(ctx, *coll, agentdb.Query{Vector: q, TopK: uint32(*k)})
		if err != nil {
			return 0, err
		}
		s := 0
		for _, h := range hits {
			s += len(h.ID) + len(h.Payload)
		}
		return s, nil
	}
	fns := map[string]searchFn{"raw": rawSearch, "sdk": sdkSearch}
	for name, f := range fns {
		if _, err := f(ctx, queries[0]); err != nil {
			log.Fatalf("%s: %v", name, err)
		}
	}

	latency := func(f searchFn) map[string]interface{} {
		for i := 0; i < *warmup; i++ {
			if _, err := f(ctx, queries[i%len(queries)]); err != nil {
				log.Fatal(err)
			}
		}
		lat := make([]float64, *n)
		sum := 0.0
		for i := 0; i < *n; i++ {
			q := queries[i%len(queries)]
			t := time.Now()
			if _, err := f(ctx, q); err != nil {
				log.Fatal(err)
			}
			lat[i] = float64(time.Since(t).Nanoseconds()) / 1e6
			sum += lat[i]
		}
		sort.Float64s(lat)
		return map[string]interface{}{"n": *n, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "mean_ms": sum / float64(*n)}
	}
	throughput := func(f searchFn) map[string]interface{} {
		var done int64
		var stop int32
		var wg sync.WaitGroup
		t0 := time.Now()
		for w := 0; w < *conc; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; atomic.LoadInt32(&stop) == 0; i += *conc {
					if _, err := f(ctx, queries[i%len(queries)]); err != nil {
						log.Fatal(err)
					}
					atomic.AddInt64(&done, 1)
				}
			}(w)
		}
		time.Sleep(time.Duration(*seconds * float64(time.Second)))
		atomic.StoreInt32(&stop, 1)
		wg.Wait()
		el := time.Since(t0).Seconds()
		return map[string]interface{}{"requests": done, "seconds": el, "qps": float64(done) / el}
	}

	label := *caseName
	if label == "" {
		label = fmt.Sprintf("k=%d", *k)
	}
	order := []string{"raw", "sdk"}
	for r := 0; r < *rounds; r++ {
		o := order
		if r%2 == 1 {
			o = []string{order[1], order[0]}
		}
		for _, name := range o {
			out := latency(fns[name])
			out["kind"] = "latency"
			put(out, label, *k, len(queries[0]), name, r)
			emit(out)
			out = throughput(fns[name])
			out["kind"] = fmt.Sprintf("qps_goroutines%d", *conc)
			put(out, label, *k, len(queries[0]), name, r)
			emit(out)
		}
	}
}

func put(m map[string]interface{}, label string, k, dim int, client string, round int) {
	m["lang"] = "go"
	m["case"] = label
	m["k"] = k
	m["dim"] = dim
	m["client"] = client
	m["round"] = round
}
