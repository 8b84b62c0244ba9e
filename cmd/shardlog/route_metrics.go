package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardlog/shardlog/publish"
)

// publishCollector reads route's publisher's counters at scrape time.
type publishCollector struct {
	p                                                       *publish.Publisher
	batches, records, bytes, retries, dups, failed, waiting *prometheus.Desc
}

// newPublishCollector returns the collector of p's series.
func newPublishCollector(p *publish.Publisher) publishCollector {
	return publishCollector{
		p:       p,
		batches: desc("shardlog_published_batches_total", "Batches the cluster's stream stored (route)."),
		records: desc("shardlog_published_records_total", "Records in the batches the cluster's stream stored (route)."),
		bytes:   desc("shardlog_published_bytes_total", "Bytes of the batches the cluster's stream stored, newlines included (route)."),
		retries: desc("shardlog_publish_retries_total", "Publishes refused or unanswered, and retried (route)."),
		dups:    desc("shardlog_publish_duplicates_total", "Publishes the stream had stored already: retries after a lost acknowledgement (route)."),
		failed:  desc("shardlog_publish_failed_batches_total", "Batches given up on: too large for the server, or a stop that could not wait (route)."),
		waiting: desc("shardlog_publish_shards_waiting", "Shards retrying a batch the stream refused now (route; input pauses once the buffer is full)."),
	}
}

func (c publishCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c publishCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Stats()
	for _, v := range []struct {
		d *prometheus.Desc
		n int64
	}{{c.batches, st.Batches}, {c.records, st.Records}, {c.bytes, st.Bytes}, {c.retries, st.Retries}, {c.dups, st.Duplicates}, {c.failed, st.Failed}} {
		ch <- prometheus.MustNewConstMetric(v.d, prometheus.CounterValue, float64(v.n))
	}
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(st.Waiting))
}

// publishBlocked says why route's input is blocked, for /readyz: shards
// whose batches the stream refuses; "" when none.
func publishBlocked(p *publish.Publisher) string {
	if n := p.Stats().Waiting; n > 0 {
		return fmt.Sprintf("%d shards retrying a batch the cluster's stream refused (their records wait in memory; input pauses once the buffer is full)", n)
	}
	return ""
}
