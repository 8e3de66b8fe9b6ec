package testkit

import (
	"context"
	"os"
	"time"

	"github.com/gocql/gocql"
	kafkago "github.com/segmentio/kafka-go"
)

// CassandraSession opens a session on the Cassandra at addr (in keyspace unless it is
// ""), with timeouts that suit a busy test machine; it does not look for other nodes, so a
// single local node is enough.
func CassandraSession(addr, keyspace string) (*gocql.Session, error) {
	cluster := gocql.NewCluster(addr)
	cluster.Timeout = 30 * time.Second
	cluster.ConnectTimeout = 5 * time.Second
	cluster.DisableInitialHostLookup = true
	cluster.Keyspace = keyspace
	return cluster.CreateSession()
}

// DeleteTopic deletes a Kafka topic, bounded by 10 seconds. It is best effort: a topic that
// is already gone, or a broker that no longer answers, is not an error worth a test.
func DeleteTopic(brokers, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := &kafkago.Client{Addr: kafkago.TCP(brokers), Timeout: 10 * time.Second}
	_, _ = client.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}})
}

// The shared engines (host:port), as `make unit` exports them; "" when not set, and the
// tests that need one skip.
var (
	SharedKafka     = os.Getenv("GLIMPSE_TEST_KAFKA")
	SharedCassandra = os.Getenv("GLIMPSE_TEST_CASSANDRA")
	SharedConsul    = os.Getenv("GLIMPSE_TEST_CONSUL")
)
