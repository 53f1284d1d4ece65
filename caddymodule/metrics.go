package caddymodule

import (
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// registerMetrics publishes how current this node's view of the store is,
// in the config's metrics registry (Caddy's /metrics): with etcd, the age
// of the view grows while etcd is unreachable and the node serves from
// memory.
func (a *App) registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	st := a.state
	collectors := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "gatehouse", Subsystem: "storage", Name: "view_age_seconds",
			Help: "Seconds since the store last confirmed this node's view of clients, keys and revocations (0 for bbolt).",
		}, func() float64 { return st.sync.Status().Age(time.Now()).Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "gatehouse", Subsystem: "storage", Name: "resyncs_total",
			Help: "Full reloads of the store after a broken or compacted watch.",
		}, func() float64 { return float64(st.sync.Status().Resyncs) }),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			return err
		}
	}
	return nil
}
