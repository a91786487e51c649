//! DynamoDB capacity accounting from the wire (JSON protocol), because moto does not
//! report `ConsumedCapacity` and the code under test does not ask for it.
//!
//! Method (AWS on-demand billing rules, as documented on the DynamoDB pricing page and
//! in the developer guide "Read/write capacity mode"):
//! - Item size = Σ over attributes of (UTF-8 name length + value size); S = UTF-8 bytes,
//!   N = ⌈significant digits / 2⌉ + 1, B = raw bytes, BOOL/NULL = 1,
//!   M/L = 3 + Σ(elements, +1 per element, names included for M).
//! - Standard write (PutItem/UpdateItem/DeleteItem): ⌈max(old, new) / 1 KB⌉ write
//!   request units (WRU), at least 1. Transactional write: twice that, per item.
//! - Global secondary indexes (both project ALL here): an item write that puts an entry
//!   in an index costs ⌈size / 1 KB⌉ more; one that moves the entry (index key
//!   changed) costs a delete (⌈old / 1 KB⌉) plus a put; one that removes it costs the
//!   delete. Index writes are not doubled by transactions. This is the model
//!   `docs/data-model.md` uses ("Cost per state change").
//! - Reads: strongly consistent ⌈size / 4 KB⌉ read request units (RRU, at least 1),
//!   eventually consistent half that; a Query sums the sizes of the items it returns.
//!
//! The previous image of each item (size and index keys) is remembered from the
//! writes seen through the proxy, which is exact for items written only through it.

use serde_json::Value;
use std::collections::HashMap;

pub const GSIS: [(&str, &str, &str); 2] = [("gsi1", "gsi1pk", "gsi1sk"), ("gsi2", "gsi2pk", "gsi2sk")];

/// What we remember about a stored item.
#[derive(Debug, Clone, Default)]
pub struct ItemImage {
    pub size: usize,
    /// Per GSI: the index key (pk, sk) if the item is in that index.
    pub index_keys: [Option<(String, String)>; 2],
}

/// Size in bytes of one AttributeValue (`{"S": "..."}` etc.).
pub fn value_size(v: &Value) -> usize {
    let Some(obj) = v.as_object() else { return 0 };
    let Some((ty, val)) = obj.iter().next() else { return 0 };
    match ty.as_str() {
        "S" => val.as_str().map(str::len).unwrap_or(0),
        "N" => number_size(val.as_str().unwrap_or("0")),
        "B" => val.as_str().map(|s| s.len() * 3 / 4).unwrap_or(0),
        "BOOL" | "NULL" => 1,
        "SS" => val.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::len).sum()).unwrap_or(0),
        "NS" => val.as_array().map(|a| a.iter().filter_map(Value::as_str).map(number_size).sum()).unwrap_or(0),
        "BS" => val.as_array().map(|a| a.iter().filter_map(Value::as_str).map(|s| s.len() * 3 / 4).sum()).unwrap_or(0),
        "M" => 3 + val.as_object().map(|m| m.iter().map(|(k, v)| k.len() + value_size(v) + 1).sum()).unwrap_or(0),
        "L" => 3 + val.as_array().map(|a| a.iter().map(|v| value_size(v) + 1).sum()).unwrap_or(0),
        _ => 0,
    }
}

fn number_size(n: &str) -> usize {
    let digits: String = n.chars().filter(|c| c.is_ascii_digit()).collect();
    let sig = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    sig.div_ceil(2) + 1
}

/// Size in bytes of an item (`{"attr": {"S": ...}, ...}`).
pub fn item_size(item: &Value) -> usize {
    item.as_object().map(|m| m.iter().map(|(k, v)| k.len() + value_size(v)).sum()).unwrap_or(0)
}

pub fn attr_s<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    item.get(name)?.get("S")?.as_str()
}

pub fn key_of(item: &Value) -> Option<(String, String)> {
    Some((attr_s(item, "pk")?.to_string(), attr_s(item, "sk")?.to_string()))
}

pub fn image_of(item: &Value) -> ItemImage {
    let mut img = ItemImage { size: item_size(item), index_keys: [None, None] };
    for (i, (_, pk, sk)) in GSIS.iter().enumerate() {
        if let (Some(p), Some(s)) = (attr_s(item, pk), attr_s(item, sk)) {
            img.index_keys[i] = Some((p.to_string(), s.to_string()));
        }
    }
    img
}

pub fn kb_units(bytes: usize, unit: usize) -> f64 {
    (bytes.max(1)).div_ceil(unit) as f64
}

/// Write units of putting `new` over `old` (None: no item before).
pub struct WriteCost {
    pub table: f64,
    pub gsi: f64,
}

pub fn put_cost(old: Option<&ItemImage>, new: &ItemImage, transactional: bool) -> WriteCost {
    let size = new.size.max(old.map(|o| o.size).unwrap_or(0));
    let table = kb_units(size, 1024) * if transactional { 2.0 } else { 1.0 };
    let mut gsi = 0.0;
    for i in 0..GSIS.len() {
        let before = old.and_then(|o| o.index_keys[i].as_ref());
        let after = new.index_keys[i].as_ref();
        gsi += match (before, after) {
            (None, None) => 0.0,
            (None, Some(_)) => kb_units(new.size, 1024),
            (Some(_), None) => kb_units(old.map(|o| o.size).unwrap_or(0), 1024),
            (Some(b), Some(a)) if b == a => kb_units(new.size, 1024),
            (Some(_), Some(_)) => kb_units(old.map(|o| o.size).unwrap_or(0), 1024) + kb_units(new.size, 1024),
        };
    }
    WriteCost { table, gsi }
}

pub fn delete_cost(old: Option<&ItemImage>) -> WriteCost {
    let table = kb_units(old.map(|o| o.size).unwrap_or(1), 1024);
    let gsi = old
        .map(|o| o.index_keys.iter().filter(|k| k.is_some()).count() as f64 * kb_units(o.size, 1024))
        .unwrap_or(0.0);
    WriteCost { table, gsi }
}

pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    kb_units(bytes, 4096) * if consistent { 1.0 } else { 0.5 }
}

/// The remembered images, keyed by (pk, sk).
#[derive(Default)]
pub struct Images(pub HashMap<(String, String), ItemImage>);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_follow_the_documented_rules() {
        let item = json!({"pk": {"S": "MSG#1"}, "version": {"N": "12"}, "ok": {"BOOL": true}});
        // "pk"(2)+5 + "version"(7)+2 + "ok"(2)+1
        assert_eq!(item_size(&item), 7 + 9 + 3);
        assert_eq!(number_size("1000"), 2);
        assert_eq!(number_size("123456"), 4);
    }

    #[test]
    fn index_moves_cost_a_delete_and_a_put() {
        let a = image_of(&json!({"pk": {"S": "a"}, "sk": {"S": "b"}, "gsi1pk": {"S": "DUE#1"}, "gsi1sk": {"S": "t1"}, "gsi2pk": {"S": "T"}, "gsi2sk": {"S": "x"}}));
        let b = image_of(&json!({"pk": {"S": "a"}, "sk": {"S": "b"}, "gsi1pk": {"S": "DUE#1"}, "gsi1sk": {"S": "t2"}, "gsi2pk": {"S": "T"}, "gsi2sk": {"S": "x"}}));
        let c = put_cost(Some(&a), &b, true);
        assert_eq!(c.table, 2.0);
        assert_eq!(c.gsi, 3.0); // gsi1 moved (1 + 1), gsi2 updated in place (1)
        let first = put_cost(None, &a, true);
        assert_eq!(first.gsi, 2.0);
    }
}
