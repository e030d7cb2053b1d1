/**
 * The node flags a serving gateway runs under. `bin/fastcgi-gateway` (the installed command)
 * passes the same list (test/integration/cli-bin.test.ts keeps them equal); cluster workers inherit them;
 * the benchmark starts its gateway contenders with them, as a user's command runs.
 *
 * `--initial-old-space-size=64`: V8 11.3 (Node 20) adds the ArrayBuffer bytes allocated since the
 * last mark-compact to the old generation's size when it decides whether to start one
 * (`Heap::OldGenerationSpaceAvailable`). Bodies are ArrayBuffers: node:http copies each request
 * body chunk into a new one, and each STDOUT record is copied out of the upstream connection's
 * reused read buffer into another (upstream/connection.ts). For a heap of the
 * gateway's size (about 10 MB) the limit V8 picks is near 26 MB, so about every 16 MB of body
 * traffic starts a full collection, every ~20 requests of 1 MiB. The chunks die young and a
 * scavenge would free them, but V8 scavenges for ArrayBuffers only once young ones reach 32 MB.
 * Starting the limit at 64 MB lets the scavenges come first. `bench/http/gc.ts`, c=10, 1 MiB
 * bodies, medians of 3 interleaved rounds: upload 152 → 18 mark-compacts in 8 s and 1,738 →
 * 1,009 µs of CPU per request; download 144 → 0 and 1,290 → 843 µs. The cost is peak RSS while
 * uploading, 120 → 135 MiB (downloads went 124 → 114 MiB). Nothing is reserved up front (idle
 * RSS is the same): the flag moves a limit.
 *
 * NODE_OPTIONS refuses this flag, which is why the command is a shell script.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];
