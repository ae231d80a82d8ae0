//! Serde helpers for the stored shape of a customer's state (see
//! [`crate::customer::CustomerState`]): maps and sets that refuse an entry written twice,
//! shared texts and time zones; and the stored shape of a decision ([`decision`]).

mod decision;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

/// Deserializes a JSON object into a map, refusing a key written twice: the stored state
/// never writes one, so the second value would silently win over the first.
pub(crate) fn unique_map<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + fmt::Display,
    V: Deserialize<'de>,
{
    struct MapVisitor<K, V>(PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for MapVisitor<K, V>
    where
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = BTreeMap::new();
            while let Some((key, value)) = access.next_entry::<K, V>()? {
                if map.contains_key(&key) {
                    return Err(de::Error::custom(format!("duplicate key `{key}`")));
                }
                map.insert(key, value);
            }
            Ok(map)
        }
    }

    deserializer.deserialize_map(MapVisitor(PhantomData))
}

/// [`unique_map`] for an optional map (`null` is none).
pub(crate) fn unique_map_option<'de, D, K, V>(
    deserializer: D,
) -> Result<Option<BTreeMap<K, V>>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + fmt::Display,
    V: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(
        transparent,
        bound = "K: Deserialize<'de> + Ord + fmt::Display, V: Deserialize<'de>"
    )]
    struct Unique<K, V>(#[serde(deserialize_with = "unique_map")] BTreeMap<K, V>);

    Ok(Option::<Unique<K, V>>::deserialize(deserializer)?.map(|u| u.0))
}

/// Deserializes a JSON array into a set, refusing an element written twice.
pub(crate) fn unique_set<'de, D, T>(deserializer: D) -> Result<BTreeSet<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Ord + fmt::Display,
{
    struct SetVisitor<T>(PhantomData<T>);

    impl<'de, T> Visitor<'de> for SetVisitor<T>
    where
        T: Deserialize<'de> + Ord + fmt::Display,
    {
        type Value = BTreeSet<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut set = BTreeSet::new();
            while let Some(element) = access.next_element::<T>()? {
                if set.contains(&element) {
                    return Err(de::Error::custom(format!("`{element}` is listed twice")));
                }
                set.insert(element);
            }
            Ok(set)
        }
    }

    deserializer.deserialize_seq(SetVisitor(PhantomData))
}

/// A shared text (`Arc<str>`), stored as a string.
pub(crate) mod text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub(crate) fn serialize<S: Serializer>(
        text: &Arc<str>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(text)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Arc<str>, D::Error> {
        String::deserialize(deserializer).map(Arc::from)
    }
}

/// A time zone, stored as its IANA name (`Europe/Berlin`).
pub(crate) mod timezone {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(crate) fn serialize<S: Serializer>(zone: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(zone.name())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse::<Tz>()
            .map_err(|_| de::Error::custom(format!("unknown time zone `{name}`")))
    }
}
