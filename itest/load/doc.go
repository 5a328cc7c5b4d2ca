// Package load holds load benchmarks that drive servers with outside SIP
// tools (SIPp) and compare a callmesh node with a reference server
// (Kamailio) on the same machine, in the same run.
//
// They are tests, not Go benchmarks, and they run only when CALLMESH_LOAD=1
// is set, so `make test` skips them; `make load-register` runs the
// registrar benchmark. Settings, all optional:
//
//	CALLMESH_LOAD_RATES    registrations per second of the rising steps, e.g. "500,1000,2000"
//	CALLMESH_LOAD_STEP     length of one step (default 5s)
//	CALLMESH_LOAD_SERVERS  which servers, in order (default "callmesh,kamailio")
//	CALLMESH_LOAD_OUT      file to write the results to as Markdown
package load
