//! Checks that span several fields of one value, run while the YAML is read so that the error
//! carries the file position and field path like any other.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// A value with rules across its fields.
pub(crate) trait Check {
    fn check(&self) -> Result<(), String>;
}

struct CheckedSeed<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Check> DeserializeSeed<'de> for CheckedSeed<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        let v = T::deserialize(d)?;
        v.check().map_err(de::Error::custom)?;
        Ok(v)
    }
}

/// `deserialize_with` for a list whose elements are checked one by one.
pub(crate) fn vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Check,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de> + Check> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(v) = seq.next_element_seed(CheckedSeed::<T>(PhantomData))? {
                out.push(v);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(PhantomData))
}
