package components

import "fmt"

// Engine is the server a release runs: Redis or Valkey (the Linux Foundation's BSD-licensed fork
// of Redis 7.2). The scripts use only commands both have.
type Engine string

const (
	EngineRedis  Engine = "redis"
	EngineValkey Engine = "valkey"
)

// Engines lists every accepted Engine value, in the order error messages show them.
var Engines = []Engine{EngineRedis, EngineValkey}

// The default images, pinned to exact patch versions: the one place to bump them. The README's
// image table names the same versions (tests/readme_test.go holds them equal), and
// hack/node-images.sh builds the real node's images under these names.
//   - Redis 7.2 is the last BSD-licensed Redis line (8.0 and later are AGPLv3, RSALv2 or SSPL);
//     7.2.16 (2026-08-25) has the Lua and RESTORE fixes of 2025 and 2026 (CVE-2025-49844 and after).
//   - Valkey 9.1 is Valkey's current line.
//   - HAProxy 3.2 is the current LTS branch.
//   - The exporter is v1.83.0 or later, which can switch off its /scrape endpoint (workload.go).
const (
	DefaultRedisImage   = "docker.io/library/redis:7.2.16-alpine"
	DefaultValkeyImage  = "docker.io/valkey/valkey:9.1.2-alpine"
	DefaultHAProxyImage = "docker.io/library/haproxy:3.2.25-alpine"
	DefaultMetricsImage = "docker.io/oliver006/redis_exporter:v1.93.0"
)

// DefaultImage is the engine's default server image.
func (e Engine) DefaultImage() string {
	if e == EngineValkey {
		return DefaultValkeyImage
	}
	return DefaultRedisImage
}

// programs are the names of the engine's server and client programs, which the scripts run.
// Valkey's own images also link the redis-* names to them; Debian's valkey packages do not.
func (e Engine) programs() (server, cli string) {
	return fmt.Sprintf("%s-server", e), fmt.Sprintf("%s-cli", e)
}
