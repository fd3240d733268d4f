//! The first pass over a batch body: serde reads it into structs whose fields take any JSON
//! type, so that a wrong type is reported by validation with the field's exact path instead of
//! as a serde error. Strings borrow from the body unless they hold escapes; arrays and objects
//! where a scalar belongs are skipped and only noted; lists are cut off past their limit
//! (counting the rest without keeping it).

use std::{borrow::Cow, fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer},
};
use serde_json::Number;

/// A JSON value as far as validation needs it. `null` never gets here: fields are `Option`s and
/// serde reads `null` as `None`, which validation treats as absent.
#[derive(Debug)]
pub(super) enum Any<'a> {
    Str(Cow<'a, str>),
    Num(Number),
    Bool(bool),
    /// An array or an object: never valid where a scalar is expected.
    Compound,
}

impl<'de: 'a, 'a> Deserialize<'de> for Any<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor(PhantomData))
    }
}

struct AnyVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for AnyVisitor<'a> {
    type Value = Any<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Any<'a>, E> {
        Ok(Any::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Any<'a>, E> {
        Ok(Any::Num(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Any<'a>, E> {
        Ok(Any::Num(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Any<'a>, E> {
        // JSON has no NaN or infinity; a number too large for f64 still arrives as infinity.
        Ok(Number::from_f64(v).map_or(Any::Compound, Any::Num))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Any<'a>, E> {
        Ok(Any::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Any<'a>, E> {
        Ok(Any::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Any<'a>, E> {
        Ok(Any::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Any::Compound)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any<'a>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Any::Compound)
    }
}

/// A string that borrows from the body when it can (an object key, say).
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor(PhantomData))
    }
}

/// An object read as `T`, or a note that the value was something else.
#[derive(Debug)]
pub(super) enum ObjectOr<T> {
    Object(T),
    NotObject,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = ObjectOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ObjectOr<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(ObjectOr::Object)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ObjectOr<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ObjectOr::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr::NotObject)
            }
            fn visit_unit<E>(self) -> Result<ObjectOr<T>, E> {
                Ok(ObjectOr::NotObject)
            }
        }
        d.deserialize_any(ObjectVisitor(PhantomData))
    }
}

/// A JSON array holding at most `MAX` kept items, and how many it held in all.
#[derive(Debug)]
pub(super) enum ListOr<T, const MAX: usize> {
    List { items: Vec<T>, total: usize },
    NotList,
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for ListOr<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor<T, const MAX: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for ListVisitor<T, MAX> {
            type Value = ListOr<T, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ListOr<T, MAX>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(8).min(MAX));
                while items.len() < MAX {
                    match seq.next_element::<T>()? {
                        Some(item) => items.push(item),
                        None => return Ok(ListOr::List { total: items.len(), items }),
                    }
                }
                let mut total = items.len();
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    total += 1;
                }
                Ok(ListOr::List { items, total })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ListOr<T, MAX>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ListOr::NotList)
            }
            fn visit_bool<E>(self, _: bool) -> Result<ListOr<T, MAX>, E> {
                Ok(ListOr::NotList)
            }
            fn visit_i64<E>(self, _: i64) -> Result<ListOr<T, MAX>, E> {
                Ok(ListOr::NotList)
            }
            fn visit_u64<E>(self, _: u64) -> Result<ListOr<T, MAX>, E> {
                Ok(ListOr::NotList)
            }
            fn visit_f64<E>(self, _: f64) -> Result<ListOr<T, MAX>, E> {
                Ok(ListOr::NotList)
            }
            fn visit_str<E>(self, _: &str) -> Result<ListOr<T, MAX>, E> {
                Ok(ListOr::NotList)
            }
        }
        d.deserialize_any(ListVisitor(PhantomData))
    }
}

/// A JSON object as a list of (key, value) pairs, at most `MAX` kept, and how many it held.
#[derive(Debug)]
pub(super) enum PairsOr<'a, const MAX: usize> {
    Pairs { pairs: Vec<(Cow<'a, str>, Option<Any<'a>>)>, total: usize },
    NotObject,
}

impl<'de: 'a, 'a, const MAX: usize> Deserialize<'de> for PairsOr<'a, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor<'a, const MAX: usize>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a, const MAX: usize> Visitor<'de> for PairsVisitor<'a, MAX> {
            type Value = PairsOr<'a, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PairsOr<'a, MAX>, A::Error> {
                let mut pairs = Vec::new();
                while pairs.len() < MAX {
                    match map.next_key::<Text<'a>>()? {
                        Some(Text(key)) => pairs.push((key, map.next_value::<Option<Any<'a>>>()?)),
                        None => return Ok(PairsOr::Pairs { total: pairs.len(), pairs }),
                    }
                }
                let mut total = pairs.len();
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    total += 1;
                }
                Ok(PairsOr::Pairs { pairs, total })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PairsOr<'a, MAX>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(PairsOr::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<PairsOr<'a, MAX>, E> {
                Ok(PairsOr::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<PairsOr<'a, MAX>, E> {
                Ok(PairsOr::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<PairsOr<'a, MAX>, E> {
                Ok(PairsOr::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<PairsOr<'a, MAX>, E> {
                Ok(PairsOr::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<PairsOr<'a, MAX>, E> {
                Ok(PairsOr::NotObject)
            }
        }
        d.deserialize_any(PairsVisitor(PhantomData))
    }
}

/// The batch object; unknown fields are skipped.
#[derive(Debug, Deserialize)]
pub(super) struct RawBatch<'a> {
    #[serde(default, borrow)]
    pub key: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub batch_id: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub session_id: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub events: Option<ListOr<ObjectOr<RawEvent<'a>>, { super::MAX_EVENTS }>>,
}

/// One event object, every field of every type; unknown fields are skipped.
#[derive(Debug, Deserialize)]
pub(super) struct RawEvent<'a> {
    #[serde(default, borrow, rename = "type")]
    pub kind: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub ts: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub page_id: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub url: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub referrer: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub title: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub new_session: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub variant: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub depth: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub prev: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub selector: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub text: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub href: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub seconds: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub name: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub props: Option<PairsOr<'a, { super::MAX_PROPS }>>,
    /// A `view`'s `kind` (`section` or `cta`); `type` is the event's type.
    #[serde(default, borrow, rename = "kind")]
    pub view_kind: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub order: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub seen: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub ms: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub x: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub y: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub rage: Option<Any<'a>>,
    #[serde(default, borrow)]
    pub dead: Option<Any<'a>>,
}
