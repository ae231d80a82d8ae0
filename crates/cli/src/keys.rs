//! The scenario file refuses a key written twice in any object (FORMAT.md §5: a duplicate
//! key is `BadUserInput`). Step inputs, expectations and metadata are read through
//! `serde_json::Value`, which keeps the last of two values silently, so the whole file is
//! walked once for repeated keys before anything is read from it.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeSet;
use std::fmt;

/// The first object of `bytes` (a JSON document) that holds a key twice, as an error naming
/// the key, the object's path (`steps[2].input.metadata`) and the line and column. The
/// top-level `catalog` is left to the catalog's reader, which refuses its repeated keys
/// itself (`CatalogInvalid`).
pub fn refuse_repeated(bytes: &[u8]) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Walk {
        path: String::new(),
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()
}

/// Walks one JSON value at `path`, checking every object in it.
struct Walk {
    path: String,
}

impl Walk {
    fn at(&self, key: &str) -> Self {
        Self {
            path: if self.path.is_empty() {
                key.to_owned()
            } else {
                format!("{}.{key}", self.path)
            },
        }
    }

    fn where_(&self) -> &str {
        if self.path.is_empty() {
            "the scenario"
        } else {
            &self.path
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index: usize = 0;
        while items
            .next_element_seed(Walk {
                path: format!("{}[{index}]", self.path),
            })?
            .is_some()
        {
            index = index.saturating_add(1);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = entries.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format_args!(
                    "{}: duplicate key `{key}`",
                    self.where_()
                )));
            }
            if self.path.is_empty() && key == "catalog" {
                entries.next_value::<IgnoredAny>()?;
            } else {
                entries.next_value_seed(self.at(&key))?;
            }
            seen.insert(key);
        }
        Ok(())
    }
}
