//! Fuzz inputs decoded from bytes, shared by the fuzz targets and by the stable tests that
//! replay their corpora.
//!
//! The fuzz targets derive `arbitrary::Arbitrary` on their input types, but the workspace's
//! tests cannot depend on `arbitrary` (the fuzz crate lives outside the workspace). So the
//! input types are declared with [`fuzz_struct!`] and [`fuzz_enum!`], which derive
//! `Arbitrary` under `cfg(fuzzing)` (cargo-fuzz sets it) and always implement [`Decode`]:
//! a decoder reading bytes exactly as `arbitrary` 1.5's derive does for these shapes
//! (little-endian integers padded with zeros once the data runs out, `bool` as the low bit
//! of a byte, `Option` as a `bool` then the value, arrays element by element, enum variants
//! chosen by `(u32 × count) >> 32`, struct fields in order). Every fuzz target decodes its
//! input both ways and asserts they agree, so a replay on stable sees exactly the input the
//! fuzzer saw. Only these shapes are supported: no `Vec`, `String` or floats, whose
//! `arbitrary` encodings read lengths from the end of the data.

/// The bytes left to decode.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next `N` bytes, padded with zeros past the end of the data, as
    /// `Unstructured::fill_buffer` does.
    pub fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut buffer = [0; N];
        let n = N.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buffer[..n].copy_from_slice(head);
        self.data = rest;
        buffer
    }

    /// The index of an enum variant among `count`, as `arbitrary`'s derive chooses it.
    pub fn variant(&mut self, count: u64) -> usize {
        let chosen = (u64::from(u32::decode(self)) * count) >> 32;
        usize::try_from(chosen).unwrap_or(0)
    }
}

/// A value read from fuzz bytes.
pub trait Decode: Sized {
    /// Reads one value.
    fn decode(reader: &mut Reader<'_>) -> Self;
}

macro_rules! decode_integers {
    ($($t:ty),*) => {$(
        impl Decode for $t {
            fn decode(reader: &mut Reader<'_>) -> Self {
                <$t>::from_le_bytes(reader.take())
            }
        }
    )*};
}

decode_integers!(u8, u16, u32, u64, i8, i16, i32, i64);

impl Decode for bool {
    fn decode(reader: &mut Reader<'_>) -> Self {
        u8::decode(reader) & 1 == 1
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(reader: &mut Reader<'_>) -> Self {
        if bool::decode(reader) {
            Some(T::decode(reader))
        } else {
            None
        }
    }
}

impl<T: Decode, const N: usize> Decode for [T; N] {
    fn decode(reader: &mut Reader<'_>) -> Self {
        std::array::from_fn(|_| T::decode(reader))
    }
}

impl<A: Decode, B: Decode> Decode for (A, B) {
    fn decode(reader: &mut Reader<'_>) -> Self {
        let a = A::decode(reader);
        (a, B::decode(reader))
    }
}

/// Decodes a whole input from `bytes`.
pub fn decode<T: Decode>(bytes: &[u8]) -> T {
    T::decode(&mut Reader::new(bytes))
}

/// Declares an input struct: `Arbitrary` under `cfg(fuzzing)`, [`Decode`] always.
macro_rules! fuzz_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty),+
        }

        impl $crate::decode::Decode for $name {
            fn decode(reader: &mut $crate::decode::Reader<'_>) -> Self {
                // Fields initialize in the order written, the order `arbitrary` reads them.
                Self { $($field: $crate::decode::Decode::decode(reader)),+ }
            }
        }
    };
}

/// Declares an input enum (unit and tuple variants): `Arbitrary` under `cfg(fuzzing)`,
/// [`Decode`] always.
macro_rules! fuzz_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident $(($($ty:ty),+))?),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
        pub enum $name {
            $($(#[$variant_meta])* $variant $(($($ty),+))?),+
        }

        impl $crate::decode::Decode for $name {
            fn decode(reader: &mut $crate::decode::Reader<'_>) -> Self {
                let variants: &[fn(&mut $crate::decode::Reader<'_>) -> $name] = &[
                    $(|_reader| $name::$variant $(($(<$ty as $crate::decode::Decode>::decode(_reader)),+))?),+
                ];
                let count = u64::try_from(variants.len()).unwrap_or(1);
                // `variant` is below `count`: the product of a `u32` and `count`, shifted
                // right by 32, is below `count`.
                variants[reader.variant(count)](reader)
            }
        }
    };
}
