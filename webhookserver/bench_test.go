package webhookserver_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/flexoperator/flex-operator/api/v1alpha1"
	"github.com/flexoperator/flex-operator/internal/events"
)

// BenchmarkConferenceCallbacks measures how many signed conference status callbacks per second
// the webhook stores in ConferenceRecovery status (through a real API server) when they are spread
// over 1, 100 or 1000 concurrent conferences, with up to four requests in flight per conference
// (128 at most overall: beyond that requests only queue), as Twilio sends a busy call's callbacks.
// The recoveries are created before the clock starts, so the figure is the steady state of a live
// contact centre. It reports:
//
//	events/s  callbacks answered 200 per second (each one applied to its recovery),
//	writes/s  status writes per second (callbacks waiting on one conference share a write),
//	p50-ms, p99-ms  the callbacks' latency as Twilio sees it,
//	503s  callbacks answered 503 because they waited longer than the handler timeout (Twilio
//	      would retry them); non-zero only when the API server is saturated.
//
// Run: KUBEBUILDER_ASSETS=… go test -run '^$' -bench BenchmarkConferenceCallbacks -benchtime 5s ./webhookserver/
func BenchmarkConferenceCallbacks(b *testing.B) {
	var writes atomic.Int64
	countWrites := func(c client.Client) client.Client {
		return interceptor.NewClient(noWatch{c}, interceptor.Funcs{
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				err := c.SubResource(sub).Update(ctx, obj, opts...)
				if err == nil {
					writes.Add(1)
				}
				return err
			},
		})
	}
	h := newHarness(b, harnessOptions{noConferenceCallbacks: true, wrapClient: countWrites, unlimitedTwilio: true})
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost, transport.MaxConnsPerHost = 1024, 1024
	httpClient := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	b.Cleanup(transport.CloseIdleConnections)

	for _, n := range []int{1, 100, 1000} {
		confs := h.benchConferences(httpClient, n)
		// The baseline of the same run: raw status merge patches of as many recoveries of the
		// same size (their own objects, so that the webhook's copies of its recoveries stay
		// current), with the same requests in flight, straight to the API server.
		baseline := h.baselineRecoveries(n)
		var rawRate float64
		b.Run(fmt.Sprintf("conferences=%d/baseline=raw-status-merge-patch", n), func(b *testing.B) {
			rawRate = h.rawStatusPatches(b, baseline, min(4*n, 128))
		})
		// Open loop at half the raw rate: the latency Twilio sees when the operator is not saturated.
		b.Run(fmt.Sprintf("conferences=%d/paced=half-raw-rate", n), func(b *testing.B) {
			h.pacedCallbacks(b, httpClient, confs, rawRate/2, 3*time.Second)
		})
		b.Run(fmt.Sprintf("conferences=%d", n), func(b *testing.B) {
			inFlight := min(4*n, 128)
			b.SetParallelism(max(1, inFlight/runtime.GOMAXPROCS(0)))
			var (
				next      atomic.Int64
				failed    atomic.Int64
				retried   atomic.Int64
				mu        sync.Mutex
				latencies []time.Duration
			)
			writesBefore := writes.Load()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					i := next.Add(1) - 1
					c := confs[i%int64(len(confs))]
					form := c.nextEvent()
					began := time.Now()
					switch h.send(httpClient, "conference", form) {
					case http.StatusOK:
					case http.StatusServiceUnavailable:
						retried.Add(1)
					default:
						failed.Add(1)
					}
					mine = append(mine, time.Since(began))
				}
				mu.Lock()
				latencies = append(latencies, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Errorf("%d of %d callbacks were answered neither 200 nor 503", f, b.N)
			}
			slices.Sort(latencies)
			pct := func(p float64) float64 {
				if len(latencies) == 0 {
					return 0
				}
				return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(int64(b.N)-retried.Load()-failed.Load())/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(retried.Load()), "503s")
			b.ReportMetric(float64(writes.Load()-writesBefore)/elapsed.Seconds(), "writes/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op") // a wall-clock figure over concurrent requests says little
		})
	}
}

// rawStatusPatches runs b.N JSON merge patches of status (a new lastSequenceNumber each) over the
// conferences' recoveries with inFlight requests at a time, and reports and returns their rate.
func (h *harness) rawStatusPatches(b *testing.B, names []string, inFlight int) float64 {
	b.SetParallelism(max(1, inFlight/runtime.GOMAXPROCS(0)))
	var next, failed atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := next.Add(1) - 1
			rec := &v1alpha1.ConferenceRecovery{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: names[i%int64(len(names))]}}
			body := fmt.Sprintf(`{"status":{"lastSequenceNumber":%d}}`, 1_000_000+i)
			began := time.Now()
			if err := k8sClient.Status().Patch(context.Background(), rec, client.RawPatch(types.MergePatchType, []byte(body))); err != nil {
				failed.Add(1)
			}
			mine = append(mine, time.Since(began))
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Errorf("%d of %d patches failed", f, b.N)
	}
	rate := float64(int64(b.N)-failed.Load()) / elapsed.Seconds()
	b.ReportMetric(rate, "patches/s")
	b.ReportMetric(percentileMs(latencies, 0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
	return rate
}

// baselineRecoveries creates n recoveries like the benchmark's (one customer leg), straight in the
// API server, and returns their names.
func (h *harness) baselineRecoveries(n int) []string {
	h.t.Helper()
	names := make([]string, n)
	var wg sync.WaitGroup
	var failed atomic.Int64
	work := make(chan int)
	for range min(n, 32) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				sid := newSID("CF")
				names[i] = strings.ToLower(sid)
				rec := &v1alpha1.ConferenceRecovery{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: names[i]},
					Spec: v1alpha1.ConferenceRecoverySpec{PolicyName: policyName, ConferenceSID: sid}}
				if err := k8sClient.Create(context.Background(), rec); err != nil {
					failed.Add(1)
					continue
				}
				rec.Status.Participants = []v1alpha1.ParticipantStatus{{CallSID: newSID("CA"), Role: v1alpha1.RoleCustomer, Label: "customer"}}
				if err := k8sClient.Status().Update(context.Background(), rec); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	for i := range names {
		work <- i
	}
	close(work)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		h.t.Fatalf("%d of %d baseline recoveries could not be made", f, n)
	}
	return names
}

// pacedCallbacks sends callbacks at a fixed rate for the duration (open loop: a slow answer does
// not slow the sender) and reports their latency.
func (h *harness) pacedCallbacks(b *testing.B, httpClient *http.Client, confs []*benchConference, rate float64, d time.Duration) {
	if rate <= 0 {
		b.Skip("no baseline rate")
	}
	var mu sync.Mutex
	var latencies []time.Duration
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	interval := time.Duration(float64(time.Second) / rate)
	b.ResetTimer()
	for start := time.Now(); time.Since(start) < d; {
		i := sent.Add(1) - 1
		c := confs[i%int64(len(confs))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			if h.send(httpClient, "conference", c.nextEvent()) != http.StatusOK {
				failed.Add(1)
			}
			mu.Lock()
			latencies = append(latencies, time.Since(began))
			mu.Unlock()
		}()
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * interval)))
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(rate, "events/s-offered")
	b.ReportMetric(float64(failed.Load()), "not-200")
	b.ReportMetric(percentileMs(latencies, 0.50), "p50-ms")
	b.ReportMetric(percentileMs(latencies, 0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

func percentileMs(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
}

// benchConference is one conference of the benchmark: a task on the protected workflow and a
// customer leg whose hold flips with every callback.
type benchConference struct {
	sid, taskSID, callSID string
	seq                   atomic.Int64
}

// nextEvent is the conference's next callback: a participant-hold or -unhold of the customer, with
// the next sequence number, so every callback is a change to record.
func (c *benchConference) nextEvent() url.Values {
	seq := c.seq.Add(1)
	event, hold := events.ParticipantHold, "true"
	if seq%2 == 0 {
		event, hold = events.ParticipantUnhold, "false"
	}
	form := conferenceForm(c.sid, c.taskSID, int(seq), sim.Now(), event, c.callSID, "customer")
	form.Set("Hold", hold)
	return form
}

// benchConferences places n calls on the protected workflow and creates their recoveries with a
// first callback each (not timed).
func (h *harness) benchConferences(httpClient *http.Client, n int) []*benchConference {
	h.t.Helper()
	confs := make([]*benchConference, n)
	for i := range confs {
		placed, err := sim.PlaceCall("+1555"+strconv.Itoa(1000000+i), h.cc.Workflows["Voice"], nil)
		if err != nil {
			h.t.Fatalf("place call: %v", err)
		}
		confs[i] = &benchConference{sid: newSID("CF"), taskSID: placed.TaskSID, callSID: placed.CallSID}
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	work := make(chan *benchConference)
	for range min(n, 64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				c.seq.Store(1)
				join := conferenceForm(c.sid, c.taskSID, 1, sim.Now(), events.ParticipantJoin, c.callSID, "customer")
				if h.send(httpClient, "conference", join) != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	for _, c := range confs {
		work <- c
	}
	close(work)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		h.t.Fatalf("%d of %d recoveries could not be created", f, n)
	}
	return confs
}

// send posts a signed form with the given client (safe for concurrent use, unlike t.Fatal).
func (h *harness) send(httpClient *http.Client, route string, form url.Values) int {
	target := h.url(route)
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", events.SignForm(sim.AuthToken(), target, form))
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
