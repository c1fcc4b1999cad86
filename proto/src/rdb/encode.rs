//! DUMP's side: a [`Value`] to a payload Redis 7.0 and later RESTORE.

use super::compact::ListpackBuilder;
use super::io::Writer;
use super::types as t;
use super::{crc64, Stream, Value, EMIT_VERSION};
use crate::parse::streams::StreamId;

/// Quicklist node size Redis uses by default (`list-max-listpack-size -2`):
/// nodes are cut there so Redis gets the list it would have built itself.
const LIST_NODE_BYTES: usize = 8192;
/// Stream node limits by default (`stream-node-max-entries` / `-bytes`).
const STREAM_NODE_ENTRIES: usize = 100;
const STREAM_NODE_BYTES: usize = 4096;

const NODE_PACKED: u64 = 2;
const ITEM_SAMEFIELDS: i64 = 2;
const ITEM_NONE: i64 = 0;

/// The DUMP payload of `value`.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    match value {
        Value::String(s) => {
            w.u8(t::STRING);
            w.string(s);
        }
        Value::List(elements) => {
            w.u8(t::LIST_QUICKLIST_2);
            let nodes = list_nodes(elements);
            w.len(nodes.len() as u64);
            for node in nodes {
                w.len(NODE_PACKED);
                w.raw_string(&node);
            }
        }
        Value::Set(members) => {
            w.u8(t::SET);
            w.len(members.len() as u64);
            for m in members {
                w.string(m);
            }
        }
        Value::ZSet(items) => {
            w.u8(t::ZSET_2);
            w.len(items.len() as u64);
            for (member, score) in items {
                w.string(member);
                w.binary_double(*score);
            }
        }
        Value::Hash(pairs) => {
            w.u8(t::HASH);
            w.len(pairs.len() as u64);
            for (field, value) in pairs {
                w.string(field);
                w.string(value);
            }
        }
        Value::Stream(stream) => {
            w.u8(t::STREAM_LISTPACKS_2);
            encode_stream(stream, &mut w);
        }
    }
    w.raw(&EMIT_VERSION.to_le_bytes());
    let crc = crc64(0, &w.buf);
    w.raw(&crc.to_le_bytes());
    w.buf
}

/// The list cut into listpacks of at most [`LIST_NODE_BYTES`] (a larger
/// element gets a node of its own).
fn list_nodes(elements: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut nodes = Vec::new();
    let mut node = ListpackBuilder::default();
    for e in elements {
        let entry = ListpackBuilder::entry_size(e);
        if node.count() > 0 && node.size() + entry > LIST_NODE_BYTES {
            nodes.push(std::mem::take(&mut node).finish());
        }
        node.push(e);
    }
    if node.count() > 0 {
        nodes.push(node.finish());
    }
    nodes
}

fn write_id(w: &mut Writer, id: StreamId) {
    w.len(id.ms);
    w.len(id.seq);
}

fn encode_stream(s: &Stream, w: &mut Writer) {
    let nodes = stream_nodes(s);
    w.len(nodes.len() as u64);
    for (master, blob) in &nodes {
        w.raw_string(&master.to_bytes());
        w.raw_string(blob);
    }
    w.len(s.entries.len() as u64);
    write_id(w, s.last_id);
    write_id(w, s.first_id);
    write_id(w, s.max_deleted_id);
    w.len(s.entries_added);
    w.len(s.groups.len() as u64);
    for g in &s.groups {
        w.string(&g.name);
        write_id(w, g.last_id);
        // -1 (unknown) goes out as Redis writes it: the u64 of the same bits.
        w.len(g.entries_read as u64);
        w.len(g.pending.len() as u64);
        for p in &g.pending {
            w.raw(&p.id.to_bytes());
            w.millis(p.delivery_time_ms);
            w.len(p.delivery_count);
        }
        w.len(g.consumers.len() as u64);
        for c in &g.consumers {
            w.string(&c.name);
            w.millis(c.seen_time_ms);
            let own: Vec<StreamId> = g
                .pending
                .iter()
                .filter(|p| p.consumer == c.name)
                .map(|p| p.id)
                .collect();
            w.len(own.len() as u64);
            for id in own {
                w.raw(&id.to_bytes());
            }
        }
    }
}

/// The entries as stream node listpacks keyed by their master id, cut at
/// Redis's default node limits. Each node's master fields are its first
/// entry's, and entries with the same fields store only their values
/// (SAMEFIELDS), as XADD builds them.
pub(super) fn stream_nodes(s: &Stream) -> Vec<(StreamId, Vec<u8>)> {
    let mut nodes = Vec::new();
    let mut start = 0;
    while start < s.entries.len() {
        let master = &s.entries[start];
        let master_fields: Vec<&[u8]> = master
            .field_values
            .iter()
            .step_by(2)
            .map(Vec::as_slice)
            .collect();
        let mut body = ListpackBuilder::default();
        let mut count = 0usize;
        let mut bytes = 0usize;
        for e in &s.entries[start..] {
            if count == STREAM_NODE_ENTRIES || (count > 0 && bytes >= STREAM_NODE_BYTES) {
                break;
            }
            let fields: Vec<&[u8]> = e
                .field_values
                .iter()
                .step_by(2)
                .map(Vec::as_slice)
                .collect();
            let same = fields == master_fields;
            let before = body.size();
            body.push_int(if same { ITEM_SAMEFIELDS } else { ITEM_NONE });
            body.push_int(e.id.ms.wrapping_sub(master.id.ms) as i64);
            body.push_int(e.id.seq.wrapping_sub(master.id.seq) as i64);
            let pairs = e.field_values.len() / 2;
            if same {
                for v in e.field_values.iter().skip(1).step_by(2) {
                    body.push(v);
                }
                body.push_int(pairs as i64 + 3);
            } else {
                body.push_int(pairs as i64);
                for fv in &e.field_values {
                    body.push(fv);
                }
                body.push_int(2 * pairs as i64 + 4);
            }
            bytes += body.size() - before;
            count += 1;
        }
        let mut lp = ListpackBuilder::default();
        lp.push_int(count as i64);
        lp.push_int(0);
        lp.push_int(master_fields.len() as i64);
        for f in &master_fields {
            lp.push(f);
        }
        lp.push_int(0);
        nodes.push((master.id, lp.append(body)));
        start += count;
    }
    nodes
}
