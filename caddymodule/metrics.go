package caddymodule

import (
	"errors"
	"net/http"
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
	m := st.metrics
	collectors := []prometheus.Collector{m.tokens, m.protect, m.introspect,
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

// requestMetrics counts what the endpoints and protected routes decide. It
// lives with the shared state, so counts survive config reloads; each new
// config's registry registers the same collectors.
type requestMetrics struct {
	tokens     *prometheus.CounterVec // outcome: issued, or the OAuth error code
	protect    *prometheus.CounterVec // outcome, below
	introspect *prometheus.CounterVec // active: true or false

	// Resolved once: the hot path only adds.
	granted, anonymous, badRequest, unauthorized, forbidden, unavailable, overloaded, throttled prometheus.Counter
}

func newRequestMetrics() *requestMetrics {
	m := &requestMetrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gatehouse", Name: "token_requests_total",
			Help: "Token endpoint requests by outcome: issued, or the OAuth error code.",
		}, []string{"outcome"}),
		protect: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gatehouse", Name: "protected_requests_total",
			Help: "Requests on gatehouse_protect routes by outcome: granted, anonymous, bad_request, unauthorized, forbidden, unavailable (503, the introspection server failing), overloaded (503, introspection calls at their limit), throttled (429, too many unknown tokens from the address).",
		}, []string{"outcome"}),
		introspect: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gatehouse", Name: "introspection_requests_total",
			Help: "Answered introspection requests by whether the token was active.",
		}, []string{"active"}),
	}
	m.granted = m.protect.WithLabelValues("granted")
	m.anonymous = m.protect.WithLabelValues("anonymous")
	m.badRequest = m.protect.WithLabelValues("bad_request")
	m.unauthorized = m.protect.WithLabelValues("unauthorized")
	m.forbidden = m.protect.WithLabelValues("forbidden")
	m.unavailable = m.protect.WithLabelValues("unavailable")
	m.overloaded = m.protect.WithLabelValues("overloaded")
	m.throttled = m.protect.WithLabelValues("throttled")
	return m
}

// refused counts a protected request refused with status.
func (m *requestMetrics) refused(status int) {
	switch status {
	case http.StatusBadRequest:
		m.badRequest.Inc()
	case http.StatusForbidden:
		m.forbidden.Inc()
	default:
		m.unauthorized.Inc()
	}
}
