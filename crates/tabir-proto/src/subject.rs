//! Subject ids: the 16-digit Indonesian NIK (Nomor Induk Kependudukan).
//!
//! Structure checked: 16 ASCII digits; province code 11..=94; district and sub-district codes
//! present; birth day 01..=31 (plus 40 for women: 41..=71); month 01..=12; serial not 0000.
//! A NIK is personal data: Debug and Display mask its middle digits.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct SubjectId(String);

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectIdError {
    #[error("a NIK has exactly 16 digits")]
    Length,
    #[error("a NIK contains only digits")]
    NotDigits,
    #[error("the province code of the NIK is not valid")]
    Province,
    #[error("the birth date part of the NIK is not valid")]
    BirthDate,
    #[error("the serial part of the NIK is 0000")]
    Serial,
}

impl SubjectId {
    pub fn parse(text: &str) -> Result<Self, SubjectIdError> {
        if text.len() != 16 {
            return Err(SubjectIdError::Length);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SubjectIdError::NotDigits);
        }
        let number = |range: std::ops::Range<usize>| -> u32 {
            text[range]
                .bytes()
                .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'))
        };
        if !(11..=94).contains(&number(0..2)) {
            return Err(SubjectIdError::Province);
        }
        let day = number(6..8);
        let month = number(8..10);
        if !((1..=31).contains(&day) || (41..=71).contains(&day)) || !(1..=12).contains(&month) {
            return Err(SubjectIdError::BirthDate);
        }
        if number(12..16) == 0 {
            return Err(SubjectIdError::Serial);
        }
        Ok(Self(text.to_owned()))
    }

    /// The full NIK, for storage keys and the audit log. Do not print it in logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SubjectId {
    type Error = SubjectIdError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<SubjectId> for String {
    fn from(id: SubjectId) -> Self {
        id.0
    }
}

/// Masked: province and serial only, e.g. `32**********0001`.
impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}**********{}", &self.0[..2], &self.0[12..])
    }
}

impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectId({self})")
    }
}

/// What the server keeps and logs instead of a NIK: a keyed hash of it (HMAC-SHA256 under a
/// key per key domain that the server derives from its master key and never writes down), as 64
/// hex characters. The same NIK gives the same tag within a domain, so entries about one
/// subject still link for auditors; without the key nobody can tell which NIK a tag stands for
/// (a NIK has few enough values to be guessed from a plain hash), and deleting an enrolment
/// leaves nothing readable.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct SubjectTag(String);

impl SubjectTag {
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        Self(crate::hex::encode(digest))
    }

    /// 64 lower-case hex characters.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SubjectTag {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text).ok_or("a subject tag is 64 lower-case hex characters")
    }
}

impl From<SubjectTag> for String {
    fn from(tag: SubjectTag) -> Self {
        tag.0
    }
}

impl fmt::Display for SubjectTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SubjectTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectTag({})", &self.0[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tags_are_64_hex_characters() {
        let tag = SubjectTag::from_digest(&[0xab; 32]);
        assert_eq!(SubjectTag::parse(tag.as_str()), Some(tag.clone()));
        assert_eq!(SubjectTag::parse("ab"), None);
        assert_eq!(SubjectTag::parse(&"AB".repeat(32)), None);
        let json = serde_json::to_string(&tag).unwrap();
        assert_eq!(serde_json::from_str::<SubjectTag>(&json).unwrap(), tag);
        assert!(serde_json::from_str::<SubjectTag>("\"3201012501900001\"").is_err());
    }

    #[test]
    fn valid_niks_parse_and_print_masked() {
        for nik in ["3201012501900001", "3171066509850123", "9471011212999999"] {
            let id = SubjectId::parse(nik).unwrap();
            assert_eq!(id.as_str(), nik);
            let shown = format!("{id} {id:?}");
            assert!(!shown.contains(&nik[2..12]), "{shown}");
        }
    }

    #[test]
    fn invalid_niks_say_why() {
        assert_eq!(SubjectId::parse("123"), Err(SubjectIdError::Length));
        assert_eq!(
            SubjectId::parse("32010125019000a1"),
            Err(SubjectIdError::NotDigits)
        );
        assert_eq!(
            SubjectId::parse("０２０１０１２５０１９０００１"),
            Err(SubjectIdError::Length)
        );
        assert_eq!(
            SubjectId::parse("0501012501900001"),
            Err(SubjectIdError::Province)
        );
        assert_eq!(
            SubjectId::parse("3201013501900001"),
            Err(SubjectIdError::BirthDate)
        );
        assert_eq!(
            SubjectId::parse("3201012513900001"),
            Err(SubjectIdError::BirthDate)
        );
        assert_eq!(
            SubjectId::parse("3201012501900000"),
            Err(SubjectIdError::Serial)
        );
    }

    #[test]
    fn serde_validates() {
        let id: SubjectId = serde_json::from_str("\"3201012501900001\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"3201012501900001\"");
        assert!(serde_json::from_str::<SubjectId>("\"1234\"").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,24}") {
            let _ = SubjectId::parse(&text);
        }
    }
}
