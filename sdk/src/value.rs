//! Attribute values: the small, typed map that moments, stakeholders and custom effects carry.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One attribute value. JSON `true`, `3`, `2.5` and `"text"` map to the four variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// Attributes: a small map from name to [`Value`], ordered by name so that encodings are
/// deterministic. It encodes as a map (a JSON object, a MessagePack map), exactly as a
/// `BTreeMap<String, Value>` would.
///
/// A sorted vector rather than a `BTreeMap`: moments carry a few attributes at most (32 are
/// allowed), and a B-tree spends a node of several hundred bytes on one entry, which every
/// moment parsed, stored, scored and dropped would pay for.
#[derive(Clone, Default, PartialEq)]
pub struct Attrs(Vec<(String, Value)>);

impl Attrs {
    pub const fn new() -> Attrs {
        Attrs(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self.find(name) {
            Ok(i) => Some(&self.0[i].1),
            Err(_) => None,
        }
    }

    /// Sets attribute `name`, returning its value before, if it had one.
    pub fn insert(&mut self, name: String, value: Value) -> Option<Value> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    /// Removes attribute `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        match self.find(name) {
            Ok(i) => Some(self.0.remove(i).1),
            Err(_) => None,
        }
    }

    /// The attributes, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> + '_ {
        self.into_iter()
    }

    /// The attributes `pairs` name, in any order; a name given twice keeps its last value, as
    /// in a map. Sorts once (O(n log n)): inserting one by one moves the vector's tail each time,
    /// and a request of 160 k attributes in reverse order took 20 s to decode that way.
    fn from_pairs(mut pairs: Vec<(String, Value)>) -> Attrs {
        // Stable: a name's values stay in the order given, and the last one is kept.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        Attrs(pairs)
    }
}

impl fmt::Debug for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, Value)> for Attrs {
    /// A later value of a name replaces an earlier one, as in a map.
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(items: I) -> Attrs {
        Attrs::from_pairs(items.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a String, &'a Value);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, Value)>, fn(&'a (String, Value)) -> (&'a String, &'a Value)>;

    fn into_iter(self) -> Self::IntoIter {
        fn pair(e: &(String, Value)) -> (&String, &Value) {
            (&e.0, &e.1)
        }
        self.0.iter().map(pair)
    }
}

impl Serialize for Attrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Attrs, D::Error> {
        struct AttrsVisitor;

        impl<'de> Visitor<'de> for AttrsVisitor {
            type Value = Attrs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of attribute names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attrs, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(32));
                while let Some(pair) = map.next_entry::<String, Value>()? {
                    pairs.push(pair);
                }
                Ok(Attrs::from_pairs(pairs))
            }
        }

        d.deserialize_map(AttrsVisitor)
    }
}

impl Value {
    /// The value as a number, if it is one (integers widen to `f64`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{}", b),
            Value::Int(i) => write!(f, "{}", i),
            Value::Float(x) => write!(f, "{}", x),
            Value::Text(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::ser::SerializeMap;
    use serde::{Serialize, Serializer};

    use super::{Attrs, Value};

    fn pairs() -> Vec<(String, Value)> {
        vec![
            ("words".to_string(), Value::Int(250)),
            ("accepted".to_string(), Value::Bool(true)),
            ("lang".to_string(), Value::Text("nl".to_string())),
            ("score".to_string(), Value::Float(4.5)),
        ]
    }

    #[test]
    fn attrs_encode_exactly_as_a_btree_map_of_the_same_entries() {
        let attrs: Attrs = pairs().into_iter().collect();
        let map: BTreeMap<String, Value> = pairs().into_iter().collect();
        let bytes = rmp_serde::to_vec_named(&attrs).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec_named(&map).unwrap());
        assert_eq!(rmp_serde::from_slice::<Attrs>(&bytes).unwrap(), attrs);
        let names: Vec<&str> = attrs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["accepted", "lang", "score", "words"]);
        assert_eq!(attrs.get("words"), Some(&Value::Int(250)));
        assert_eq!(attrs.get("missing"), None);
    }

    /// A map that names a key twice, as a client's JSON object or MessagePack map may.
    struct Twice;

    impl Serialize for Twice {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(3))?;
            map.serialize_entry("b", &Value::Int(1))?;
            map.serialize_entry("a", &Value::Int(2))?;
            map.serialize_entry("b", &Value::Int(3))?;
            map.end()
        }
    }

    #[test]
    fn a_name_given_twice_keeps_its_last_value_as_in_a_map() {
        let bytes = rmp_serde::to_vec(&Twice).unwrap();
        let attrs: Attrs = rmp_serde::from_slice(&bytes).unwrap();
        let map: BTreeMap<String, Value> = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(attrs.iter().collect::<Vec<_>>(), map.iter().collect::<Vec<_>>());
        assert_eq!(attrs.len(), 2);
        let mut attrs = attrs;
        assert_eq!(attrs.insert("a".to_string(), Value::Int(7)), Some(Value::Int(2)));
        assert_eq!(attrs.remove("b"), Some(Value::Int(3)));
        assert_eq!(format!("{attrs:?}"), format!("{:?}", BTreeMap::from([("a".to_string(), Value::Int(7))])));
    }

    #[test]
    fn many_names_in_any_order_decode_as_a_map_would() {
        // Reverse order, each name twice: the second value is the one kept.
        let pairs: Vec<(String, Value)> =
            (0..3000).rev().flat_map(|i| [0, 1].map(|k| (format!("a{i:05}"), Value::Int(i * 10 + k)))).collect();
        let attrs: Attrs = pairs.iter().cloned().collect();
        let map: BTreeMap<String, Value> = pairs.into_iter().collect();
        assert_eq!(attrs.iter().collect::<Vec<_>>(), map.iter().collect::<Vec<_>>());
        let bytes = rmp_serde::to_vec(&map).unwrap();
        assert_eq!(rmp_serde::from_slice::<Attrs>(&bytes).unwrap(), attrs);
    }
}
