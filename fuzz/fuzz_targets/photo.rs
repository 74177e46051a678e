//! Photos as the face pipeline decodes them: `tabir_face::image_io::decode_photo` (JPEG and
//! PNG, the pixel-count limit from the header, the EXIF orientation). No model is loaded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tabir_face::image_io::{decode_photo, MAX_PIXELS};

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = decode_photo(data) {
        let (width, height) = image.dimensions();
        assert!(u64::from(width) * u64::from(height) <= MAX_PIXELS);
        assert_eq!(image.as_raw().len(), width as usize * height as usize * 3);
    }
});
