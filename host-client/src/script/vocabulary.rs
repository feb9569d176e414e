//! The frame vocabulary expectations may name: every frame kind (`Body::kind`) and the fields
//! of its body, read from evidence/'s own types, so a kind or field added there is known here
//! without a second list to keep in step.
//!
//! The types are walked with a small tracing serde `Deserializer`: it builds one value of each
//! `Body` variant (zeros, empty strings, one element per list, the first variant of every
//! nested enum) to learn its `kind()`, and records the field names serde's derive hands it
//! (`deserialize_struct`'s field list) on the way down. Nested enums (`Outcome`, `Firmware`)
//! have several shapes in JSON, so paths below them are not checked. This module knows the
//! shape of frames, not what any field means.

use std::sync::OnceLock;

use serde::de::value::{Error, StrDeserializer, U32Deserializer};
use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, Error as _, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::Deserialize;

/// What a value looks like in a frame's JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A number, string, bool or null.
    Leaf,
    /// An object with these fields.
    Struct(Vec<(&'static str, Shape)>),
    /// A list (or fixed array) of elements of one shape, indexed by number.
    List(Box<Shape>),
    /// An enum or a map: several shapes, paths below it are not checked.
    Open,
}

/// One frame kind and its body.
#[derive(Debug, Clone)]
pub struct Kind {
    pub name: &'static str,
    pub body: Shape,
}

/// Every frame kind, in `Body` order.
pub fn kinds() -> &'static [Kind] {
    static KINDS: OnceLock<Vec<Kind>> = OnceLock::new();
    KINDS.get_or_init(|| {
        let mut out = Vec::new();
        for index in 0.. {
            let mut body = Shape::Leaf;
            let tracer = Tracer {
                slot: &mut body,
                pick: Some(index),
            };
            let Ok(value) = evidence::Body::deserialize(tracer) else {
                break;
            };
            out.push(Kind {
                name: value.kind(),
                body,
            });
        }
        out
    })
}

/// Splits `path` into the known kind it starts with and the field path after it (longest
/// kind wins: `nvme.identify.model` is kind `nvme.identify`, field `model`).
pub fn split_kind(path: &str) -> Option<(&'static Kind, &str)> {
    kinds()
        .iter()
        .filter_map(|k| {
            let rest = if path == k.name {
                ""
            } else {
                path.strip_prefix(k.name)?.strip_prefix('.')?
            };
            Some((k, rest))
        })
        .max_by_key(|(k, _)| k.name.len())
}

/// Checks a field path below a kind's body: `Err` names the first segment that is not there.
pub fn check_field(kind: &Kind, field: &str) -> Result<(), String> {
    if field.is_empty() {
        return Ok(());
    }
    let mut shape = &kind.body;
    for seg in field.split('.') {
        shape = match shape {
            Shape::Open => return Ok(()),
            Shape::Struct(fields) => match fields.iter().find(|(n, _)| *n == seg) {
                Some((_, s)) => s,
                None => {
                    let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "{} frames have no field {seg:?} (fields: {})",
                        kind.name,
                        names.join(", ")
                    ));
                }
            },
            Shape::List(elem) if seg.parse::<usize>().is_ok() => elem,
            Shape::List(_) => return Err(format!("{seg:?} in {field:?} is a list: index it")),
            Shape::Leaf => {
                return Err(format!(
                    "{field:?}: nothing below {seg:?}'s parent in {}",
                    kind.name
                ))
            }
        };
    }
    Ok(())
}

/// Builds a placeholder value of whatever type deserializes from it and writes that type's
/// [`Shape`] into `slot`. `pick`: which variant a top-level enum takes (nested: the first).
struct Tracer<'a> {
    slot: &'a mut Shape,
    pick: Option<u32>,
}

impl<'a> Tracer<'a> {
    fn leaf(self) -> Tracer<'a> {
        *self.slot = Shape::Leaf;
        self
    }
}

macro_rules! leaf {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let _ = self.leaf();
            visitor.$visit($($value)?)
        }
    )*};
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = Error;

    leaf! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i8(0),
        deserialize_i16 => visit_i16(0),
        deserialize_i32 => visit_i32(0),
        deserialize_i64 => visit_i64(0),
        deserialize_i128 => visit_i128(0),
        deserialize_u8 => visit_u8(0),
        deserialize_u16 => visit_u16(0),
        deserialize_u32 => visit_u32(0),
        deserialize_u64 => visit_u64(0),
        deserialize_u128 => visit_u128(0),
        deserialize_f32 => visit_f32(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('a'),
        deserialize_str => visit_str(""),
        deserialize_string => visit_string(String::new()),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_byte_buf(Vec::new()),
        deserialize_unit => visit_unit(),
        deserialize_identifier => visit_str(""),
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        *self.slot = Shape::Open;
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Traced through `Some`, so the shape below an optional field is known too.
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_tuple(1, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let mut items = Items {
            left: len,
            elem: Shape::Leaf,
        };
        let value = visitor.visit_seq(&mut items)?;
        *self.slot = Shape::List(Box::new(items.elem));
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        *self.slot = Shape::Open;
        visitor.visit_map(Fields {
            names: &[],
            next: 0,
            shapes: Vec::new(),
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut access = Fields {
            names: fields,
            next: 0,
            shapes: Vec::new(),
        };
        let value = visitor.visit_map(&mut access)?;
        *self.slot = Shape::Struct(access.shapes);
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let index = self.pick.unwrap_or(0);
        if index as usize >= variants.len() {
            return Err(Error::custom("no such variant"));
        }
        if self.pick.is_none() {
            *self.slot = Shape::Open;
            let mut ignored = Shape::Leaf;
            return visitor.visit_enum(Variant {
                slot: &mut ignored,
                index,
            });
        }
        visitor.visit_enum(Variant {
            slot: self.slot,
            index,
        })
    }
}

/// The elements of a list or array: `left` placeholders of one traced shape.
struct Items {
    left: usize,
    elem: Shape,
}

impl<'de> SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(Tracer {
            slot: &mut self.elem,
            pick: None,
        })
        .map(Some)
    }
}

/// A struct's fields, each traced in turn.
struct Fields {
    names: &'static [&'static str],
    next: usize,
    shapes: Vec<(&'static str, Shape)>,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(name) = self.names.get(self.next) else {
            return Ok(None);
        };
        let key: StrDeserializer<'_, Error> = name.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let name = self.names[self.next];
        self.next += 1;
        let mut shape = Shape::Leaf;
        let value = seed.deserialize(Tracer {
            slot: &mut shape,
            pick: None,
        })?;
        self.shapes.push((name, shape));
        Ok(value)
    }
}

/// One enum variant, by index.
struct Variant<'a> {
    slot: &'a mut Shape,
    index: u32,
}

impl<'de, 'a> EnumAccess<'de> for Variant<'a> {
    type Error = Error;
    type Variant = Tracer<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Tracer<'a>), Error> {
        let index: U32Deserializer<Error> = self.index.into_deserializer();
        let tag = seed.deserialize(index)?;
        Ok((
            tag,
            Tracer {
                slot: self.slot,
                pick: None,
            },
        ))
    }
}

impl<'de> VariantAccess<'de> for Tracer<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        *self.slot = Shape::Leaf;
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_struct("", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_variant_is_a_known_kind_with_its_fields() {
        let names: Vec<&str> = kinds().iter().map(|k| k.name).collect();
        for want in [
            "banner",
            "command.start",
            "teardown.step",
            "machine-check",
            "net.http",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "kinds are unique: {names:?}");
        let (kind, field) = split_kind("nvme.identify.model").unwrap();
        assert_eq!((kind.name, field), ("nvme.identify", "model"));
        assert!(check_field(kind, "model").is_ok());
        assert!(check_field(kind, "active_namespaces.0").is_ok());
        assert!(check_field(kind, "modle").unwrap_err().contains("no field"));
        let (teardown, _) = split_kind("teardown.step").unwrap();
        assert!(check_field(teardown, "ok").is_ok());
        assert!(split_kind("machine_check").is_none());
        // Below an enum (command.result's outcome) nothing is checked.
        let (result, _) = split_kind("command.result").unwrap();
        assert!(check_field(result, "outcome.Error.code").is_ok());
    }
}
