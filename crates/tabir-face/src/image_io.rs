//! Decoding photos: JPEG and PNG only, a pixel-count limit checked from the header before any
//! pixel is decoded, and the EXIF orientation applied so that faces are upright.

use crate::error::{FaceError, Result};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;

/// Largest photo accepted: 40 megapixels (a phone camera's full resolution is below that).
pub const MAX_PIXELS: u64 = 40_000_000;
/// Largest file accepted, before decoding.
pub const MAX_FILE_BYTES: usize = 40 * 1024 * 1024;

/// Decode a JPEG or PNG photo to upright RGB.
pub fn decode_photo(bytes: &[u8]) -> Result<RgbImage> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(FaceError::UnreadableImage {
            detail: format!("file is over {} MiB", MAX_FILE_BYTES / (1024 * 1024)),
        });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| FaceError::UnreadableImage {
            detail: e.to_string(),
        })?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png) => {}
        Some(_) => return Err(FaceError::UnsupportedFormat),
        None => {
            return Err(FaceError::UnreadableImage {
                detail: "not an image".into(),
            })
        }
    }
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills a cut-off file with grey and carries on; a half photo must
        // not be embedded.
        return Err(FaceError::UnreadableImage {
            detail: "the JPEG file is truncated".into(),
        });
    }
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(FaceError::ImageTooLarge {
            width,
            height,
            limit: MAX_PIXELS,
        });
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8);
    decoder.set_limits(limits).map_err(unreadable)?;
    let orientation = decoder.orientation().map_err(unreadable)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// A complete JPEG has an end-of-image marker (FF D9) after its last start-of-scan (FF DA).
/// Entropy-coded data cannot contain FF D9 (an FF there is always followed by 00 or a restart
/// marker), and an EXIF thumbnail's own markers come before the main image's scans.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(last_scan) = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]) else {
        return false;
    };
    bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

fn unreadable(error: image::ImageError) -> FaceError {
    match error {
        image::ImageError::Unsupported(_) => FaceError::UnsupportedFormat,
        image::ImageError::Limits(_) => FaceError::ImageTooLarge {
            width: 0,
            height: 0,
            limit: MAX_PIXELS,
        },
        other => FaceError::UnreadableImage {
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }

    /// A PNG whose header claims the given size, followed by a few bytes of image data: what
    /// a hostile or corrupt upload looks like. Decoding it whole would need gigabytes.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x63, 0x00, 0x00]);
        chunk(&mut out, b"IEND", &[]);
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_huge_header_is_refused_before_decoding() {
        let err = decode_photo(&png_header(100_000, 100_000)).unwrap_err();
        assert!(
            matches!(err, FaceError::ImageTooLarge { width: 100_000, .. }),
            "{err}"
        );
        assert_eq!(err.code(), "image_too_large");
    }

    #[test]
    fn garbage_and_other_formats_are_refused() {
        assert!(matches!(
            decode_photo(b"hello, not an image").unwrap_err(),
            FaceError::UnreadableImage { .. }
        ));
        assert!(matches!(
            decode_photo(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap_err(),
            FaceError::UnsupportedFormat
        ));
    }

    #[test]
    fn a_small_png_decodes() {
        let image = RgbImage::from_pixel(3, 2, image::Rgb([10, 20, 30]));
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        let decoded = decode_photo(&bytes).unwrap();
        assert_eq!(decoded.dimensions(), (3, 2));
        assert_eq!(decoded.get_pixel(2, 1).0, [10, 20, 30]);
    }
}
