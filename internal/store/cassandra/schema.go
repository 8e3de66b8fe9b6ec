package cassandra

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/gocql/gocql"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// The schema is a sequence of versioned CQL files embedded in the binary,
// schema/NNNN_name.cql with NNNN = 1, 2, 3, ... Migrate applies the missing ones in order
// and records each in the schema_version table; Open refuses a keyspace whose recorded
// version is not the latest this binary knows.

//go:embed schema/*.cql
var schemaFiles embed.FS

// migration is one schema file.
type migration struct {
	version int
	name    string // file name without .cql
	stmts   []string
}

// migrations are the embedded schema files in version order. Tests may extend it.
var migrations = mustLoadMigrations(schemaFiles)

// latestVersion is the schema version this binary needs.
func latestVersion() int { return len(migrations) }

// schemaID is the partition of schema_version that holds Glimpse's versions.
const schemaID = "glimpse"

const createSchemaVersion = `CREATE TABLE IF NOT EXISTS schema_version (
    id         text,
    version    int,
    name       text,
    applied_at timestamp,
    PRIMARY KEY (id, version)
) WITH comment = 'glimpse schema versions applied by glimpse migrate'`

var (
	// ErrSchemaTooOld is returned by Open when the keyspace is missing or its schema is older
	// than this binary needs; `glimpse migrate --store=cassandra` fixes it.
	ErrSchemaTooOld = errors.New("cassandra: schema too old")
	// ErrSchemaTooNew is returned by Open and Migrate when the keyspace was migrated by a
	// newer glimpse; only upgrading this binary fixes it.
	ErrSchemaTooNew = errors.New("cassandra: schema too new")
)

func mustLoadMigrations(fsys fs.FS) []migration {
	ms, err := loadMigrations(fsys)
	if err != nil {
		panic(err)
	}
	return ms
}

// loadMigrations reads schema/*.cql and checks that the versions run 1, 2, 3, ... without gaps.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "schema/*.cql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, p := range names {
		base := strings.TrimSuffix(path.Base(p), ".cql")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || v <= 0 {
			return nil, fmt.Errorf("cassandra: schema file %s is not named NNNN_name.cql", p)
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		stmts, err := splitStatements(string(src))
		if err != nil {
			return nil, fmt.Errorf("cassandra: schema file %s: %w", p, err)
		}
		if len(stmts) == 0 {
			return nil, fmt.Errorf("cassandra: schema file %s holds no statement", p)
		}
		ms = append(ms, migration{version: v, name: base, stmts: stmts})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("cassandra: schema versions must run 1, 2, 3, ... without gaps; found %s at position %d", m.name, i+1)
		}
	}
	return ms, nil
}

// splitStatements splits CQL source at semicolons outside quotes, dropping -- and //
// line comments and /* */ block comments.
func splitStatements(src string) ([]string, error) {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for ; j < len(src); j++ {
				if src[j] == c {
					if j+1 < len(src) && src[j+1] == c { // doubled quote escapes itself
						j++
						continue
					}
					break
				}
			}
			if j >= len(src) {
				return nil, errors.New("unterminated quote")
			}
			cur.WriteString(src[i : j+1])
			i = j
		case strings.HasPrefix(src[i:], "--") || strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			cur.WriteByte('\n')
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("unterminated /* comment")
			}
			i += 2 + end + 1
			cur.WriteByte(' ')
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return stmts, nil
}

// MigrateResult tells what Migrate did.
type MigrateResult struct {
	Keyspace        string
	CreatedKeyspace bool
	From, To        int      // schema version before and after
	Applied         []string // names of the schema files applied, in order
}

// Migrate creates the keyspace (with cfg.Replication) when it does not exist and applies
// the schema versions it lacks, in order. It is idempotent: on an up-to-date keyspace it
// changes nothing. It refuses a keyspace migrated by a newer glimpse (ErrSchemaTooNew).
//
// Run it from one process at a time (`glimpse migrate --store=cassandra`, or the first
// instance started with --cassandra.create-schema): concurrent schema changes from several
// clients can leave Cassandra's schema in disagreement.
func Migrate(ctx context.Context, cfg Config) (MigrateResult, error) {
	return migrate(ctx, cfg, slog.Default())
}

func migrate(ctx context.Context, cfg Config, log *slog.Logger) (MigrateResult, error) {
	res := MigrateResult{Keyspace: cfg.Keyspace}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	repl, _ := parseReplication(cfg.Replication)

	// The keyspace, from a session that is not bound to it.
	sess, err := connect(cfg, "", log, nil)
	if err != nil {
		return res, err
	}
	stored, exists, err := keyspaceReplication(ctx, sess, cfg.Keyspace)
	if err == nil && !exists {
		stmt := fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s AND durable_writes = true", cfg.Keyspace, repl.cql())
		log.Info("creating keyspace", "keyspace", cfg.Keyspace, "replication", repl.cql())
		if err = ddl(ctx, sess, stmt); err == nil {
			res.CreatedKeyspace = true
		}
	} else if err == nil && !repl.matches(stored) {
		log.Warn("keyspace exists with another replication than cassandra.replication; leaving it as it is (change it with ALTER KEYSPACE and a repair)",
			"keyspace", cfg.Keyspace, "stored", stored, "configured", cfg.Replication)
	}
	sess.Close()
	if err != nil {
		return res, wrapSchemaErr("create keyspace "+cfg.Keyspace, err)
	}

	// The tables, from a session bound to the keyspace.
	sess, err = connect(cfg, cfg.Keyspace, log, nil)
	if err != nil {
		return res, err
	}
	defer sess.Close()
	if err := ddl(ctx, sess, createSchemaVersion); err != nil {
		return res, wrapSchemaErr("create table schema_version", err)
	}
	cur, err := schemaVersion(ctx, sess, cfg)
	if err != nil {
		return res, err
	}
	res.From, res.To = cur, cur
	if cur > latestVersion() {
		return res, tooNew(cfg.Keyspace, cur)
	}
	for _, m := range migrations[cur:] {
		log.Info("applying schema version", "keyspace", cfg.Keyspace, "version", m.version, "name", m.name)
		for _, stmt := range m.stmts {
			if err := ddl(ctx, sess, stmt); err != nil {
				return res, wrapSchemaErr(fmt.Sprintf("schema %s: %.60s", m.name, stmt), err)
			}
		}
		err := sess.Query(`INSERT INTO schema_version (id, version, name, applied_at) VALUES (?, ?, ?, toTimestamp(now()))`,
			schemaID, m.version, m.name).WithContext(ctx).Consistency(mustConsistency(cfg)).Exec()
		if err != nil {
			return res, wrapSchemaErr("record schema version", err)
		}
		res.To = m.version
		res.Applied = append(res.Applied, m.name)
	}
	return res, nil
}

// ddl runs one schema statement and waits until every node agrees on the schema.
func ddl(ctx context.Context, sess *gocql.Session, stmt string) error {
	if err := sess.Query(stmt).WithContext(ctx).Exec(); err != nil {
		return err
	}
	return sess.AwaitSchemaAgreement(ctx)
}

// keyspaceReplication reads the replication of keyspace, and whether it exists.
func keyspaceReplication(ctx context.Context, sess *gocql.Session, keyspace string) (map[string]string, bool, error) {
	var repl map[string]string
	err := sess.Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, keyspace).
		WithContext(ctx).Consistency(gocql.One).Scan(&repl)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return repl, true, nil
}

// schemaVersion reads the schema version of the keyspace sess is bound to: 0 when
// schema_version does not exist or is empty.
func schemaVersion(ctx context.Context, sess *gocql.Session, cfg Config) (int, error) {
	var name string
	err := sess.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'schema_version'`, cfg.Keyspace).
		WithContext(ctx).Consistency(gocql.One).Scan(&name)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, wrapSchemaErr("read schema tables", err)
	}
	iter := sess.Query(`SELECT version FROM schema_version WHERE id = ?`, schemaID).
		WithContext(ctx).Consistency(mustConsistency(cfg)).Iter()
	v, cur := 0, 0
	for iter.Scan(&v) {
		cur = max(cur, v)
	}
	if err := iter.Close(); err != nil {
		return 0, wrapSchemaErr("read schema version", err)
	}
	return cur, nil
}

// checkSchema refuses a keyspace whose schema is not the one this binary needs.
func checkSchema(ctx context.Context, sess *gocql.Session, cfg Config) error {
	cur, err := schemaVersion(ctx, sess, cfg)
	if err != nil {
		return err
	}
	switch need := latestVersion(); {
	case cur < need:
		return tooOld(cfg.Keyspace, cur)
	case cur > need:
		return tooNew(cfg.Keyspace, cur)
	}
	return nil
}

func tooOld(keyspace string, cur int) error {
	what := fmt.Sprintf("keyspace %q has schema version %d", keyspace, cur)
	if cur == 0 {
		what = fmt.Sprintf("keyspace %q has no Glimpse schema (schema version 0)", keyspace)
	}
	return fmt.Errorf("%w: %s, this binary needs %d: run `glimpse migrate --store=cassandra` (or start once with --cassandra.create-schema)",
		ErrSchemaTooOld, what, latestVersion())
}

func tooNew(keyspace string, cur int) error {
	return fmt.Errorf("%w: keyspace %q has schema version %d, this binary only knows versions up to %d: upgrade glimpse to a release that knows schema version %d",
		ErrSchemaTooNew, keyspace, cur, latestVersion(), cur)
}

// wrapSchemaErr names the step that failed; transient failures wrap store.ErrUnavailable.
func wrapSchemaErr(step string, err error) error {
	if kind := errorKind(err); transient(kind) {
		return fmt.Errorf("%w: cassandra: %s: %w", store.ErrUnavailable, step, err)
	}
	return fmt.Errorf("cassandra: %s: %w", step, err)
}

func mustConsistency(cfg Config) gocql.Consistency {
	c, err := parseConsistency(cfg.Consistency)
	if err != nil {
		return gocql.LocalQuorum
	}
	return c
}
