//! Decoding photos: JPEG and PNG only, a pixel-count limit checked from the header before any
//! pixel is decoded, and the EXIF orientation applied so that faces are upright.

use crate::error::{FaceError, Result};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;

/// Largest photo accepted: 40 megapixels (a phone camera's full resolution is below that).
pub const MAX_PIXELS: u64 = 40_000_000;
/// Largest file accepted, before decoding.
pub const MAX_FILE_BYTES: usize = 40 * 1024 * 1024;

/// Read a photo file, refusing one over [`MAX_FILE_BYTES`] before reading it into memory.
pub fn read_photo(path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| FaceError::UnreadableImage {
        detail: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let too_big = || FaceError::UnreadableImage {
        detail: format!("file is over {} MiB", MAX_FILE_BYTES / (1024 * 1024)),
    };
    if file.metadata().map_err(unreadable)?.len() > MAX_FILE_BYTES as u64 {
        return Err(too_big());
    }
    // A file that grows while it is read still stops at the limit.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}

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
        // The pixel count already passed: the decoder needed more memory than a photo may use
        // (a 16-bit or otherwise unusual encoding). Its size is not the problem to report.
        image::ImageError::Limits(_) => FaceError::UnreadableImage {
            detail: "decoding it needs more memory than a photo may use".into(),
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
    fn an_oversized_file_is_refused_without_reading_it() {
        let path = std::env::temp_dir().join(format!("tabir-huge-{}.jpg", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: no disk space or time spent.
        file.set_len(MAX_FILE_BYTES as u64 + 1).unwrap();
        let err = read_photo(&path).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(
            matches!(&err, FaceError::UnreadableImage { detail } if detail.contains("over")),
            "{err}"
        );
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

    /// A JPEG of a 40x20 image, left half red and right half blue, carrying an EXIF
    /// orientation tag.
    fn jpeg_with_orientation(orientation: u8) -> Vec<u8> {
        let image = RgbImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let mut jpeg = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        // APP1 "Exif": little-endian TIFF header, IFD0 with one entry: Orientation (0x0112),
        // SHORT, count 1.
        let mut tiff =
            b"II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00".to_vec();
        tiff.extend_from_slice(&[orientation, 0, 0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\x00\x00".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_is_applied() {
        let upright = decode_photo(&jpeg_with_orientation(1)).unwrap();
        assert_eq!(upright.dimensions(), (40, 20));
        // 6: the camera was turned; rotate 90 degrees clockwise to show it upright. The left
        // (red) half ends on top.
        let rotated = decode_photo(&jpeg_with_orientation(6)).unwrap();
        assert_eq!(rotated.dimensions(), (20, 40));
        let top = rotated.get_pixel(10, 5).0;
        let bottom = rotated.get_pixel(10, 35).0;
        assert!(top[0] > 200 && top[2] < 60, "top {top:?}");
        assert!(bottom[2] > 200 && bottom[0] < 60, "bottom {bottom:?}");
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
