//! The decoders behind the scripting libraries `cmsgpack` and `cjson`
//! (`storage-node/src/scripting/`): they parse bytes a script got from
//! anywhere (a key a client wrote), so they must stay bounded on hostile
//! input. They live here, apart from the Lua bindings and the node's
//! RocksDB, so a fuzzer builds them in seconds (`fuzz/`).

pub mod json;
pub mod msgpack;
