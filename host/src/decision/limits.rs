//! Bounds on the shape of a decision request, checked while it is decoded.
//!
//! The body size limit alone does not bound the work a request causes: a
//! megabyte of `{},` is a third of a million list items, each of which a
//! policy may turn into a finding. So every list of a request is bounded
//! ([`DecodeLimits::max_list_len`]) and a longer one is refused as invalid
//! (HTTP 422, CLI exit 2) with its JSON path:
//! `/observations: expected at most 1000 items, found 1001`.
//!
//! The bound is checked by the list's serde visitor as items arrive, so a
//! too-long list is refused after `max + 1` decoded items; the rest is only
//! counted (skipped without being built) for the message.
//!
//! The limit reaches the visitors through a thread-local set for the
//! duration of one [`super::decode_with`] call: decoding is synchronous, and
//! threading a seed through every derived `Deserialize` would cost the fast
//! path its derive.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};

/// Limits applied while decoding a request. `Default` is the one place the
/// default values live; the server's `[limits]` section and the CLI start
/// from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most items any one list of a request may hold (observations,
    /// triggers, criteria, stages, verification results, deficiencies,
    /// material issues, limitations, conditions, compensating controls,
    /// metrics, contacts, scope).
    pub max_list_len: usize,
    /// Most list items the whole request may hold, nested lists included
    /// (stages × criteria): each list may be within its bound while their
    /// product is not.
    pub max_total_items: usize,
}

/// The default of [`DecodeLimits::max_list_len`]: far above any real plan
/// or observation batch, and small enough that no rule of the reference
/// policy (all O(n log n)) takes long on lists of this size.
pub const DEFAULT_MAX_LIST_LEN: usize = 1_000;

/// The default of [`DecodeLimits::max_total_items`]: a plan of 20 stages
/// with 20 criteria each and a batch of observations is a few hundred.
pub const DEFAULT_MAX_TOTAL_ITEMS: usize = 10_000;

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_list_len: DEFAULT_MAX_LIST_LEN,
            max_total_items: DEFAULT_MAX_TOTAL_ITEMS,
        }
    }
}

/// A list that was longer than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLong {
    pub max: usize,
    pub found: usize,
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected at most {} items, found {}",
            self.max, self.found
        )
    }
}

thread_local! {
    static MAX_LIST_LEN: Cell<usize> = const { Cell::new(DEFAULT_MAX_LIST_LEN) };
    /// Set when a bounded list refused its input during the current decode,
    /// so the error can be classified as invalid rather than malformed.
    static REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with `limits` in force for the bounded lists it decodes on this
/// thread, restoring the previous limits afterwards (also on panic).
pub(crate) fn with_limits<T>(limits: DecodeLimits, f: impl FnOnce() -> T) -> T {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            MAX_LIST_LEN.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(MAX_LIST_LEN.with(|m| m.replace(limits.max_list_len)));
    f()
}

/// Forgets any earlier refusal; called before each decode.
pub(crate) fn clear_refused() {
    REFUSED.with(|r| r.set(false));
}

/// Whether a bounded list refused its input since [`clear_refused`].
pub(crate) fn refused() -> bool {
    REFUSED.with(Cell::get)
}

/// Reads a JSON array into a `Vec`, refusing more than the current
/// `max_list_len` items.
struct BoundedSeq<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedSeq<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let max = MAX_LIST_LEN.with(Cell::get);
        // Never trust a size hint beyond the bound (serde_json gives none).
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(max));
        while let Some(item) = seq.next_element::<T>()? {
            if out.len() == max {
                let mut found = max + 1;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    found += 1;
                }
                REFUSED.with(|r| r.set(true));
                return Err(de::Error::custom(TooLong { max, found }));
            }
            out.push(item);
        }
        Ok(out)
    }
}

/// Reads `null` or a bounded array.
struct NullableBoundedSeq<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for NullableBoundedSeq<T> {
    type Value = Option<Vec<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(BoundedSeq(PhantomData)).map(Some)
    }
}

/// A list field: absent or `null` is empty (see `request`), longer than the
/// limit is refused. Use with `#[serde(default, deserialize_with = "…")]`.
pub(crate) fn bounded_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_option(NullableBoundedSeq(PhantomData))
        .map(Option::unwrap_or_default)
}

/// An optional list field whose absence means something other than empty
/// (e.g. an authorisation's `scope`), bounded like [`bounded_list`].
pub(crate) fn bounded_optional_list<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_option(NullableBoundedSeq(PhantomData))
}
