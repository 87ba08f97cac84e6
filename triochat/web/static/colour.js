// A colour per name, the same as the terminal client's (triochat/client/view.py):
// CRC-32 of the case-folded name's UTF-8 bytes, modulo the number of colours.
// Names are ASCII (A-Z a-z 0-9 _ . -), so toLowerCase() is Python's casefold() here.

export const NAME_COLOURS = 14; // len(NAME_COLOURS) in view.py; style.css has .nc0 to .nc13

const TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c >>> 0;
}

/** zlib.crc32 of a byte array, as an unsigned 32-bit number. */
export function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const encoder = new TextEncoder();

/** Index of the colour for `name` (0 to NAME_COLOURS - 1). */
export function nameColour(name) {
  return crc32(encoder.encode(name.toLowerCase())) % NAME_COLOURS;
}

/** The CSS class that colours `name`. */
export function colourClass(name) {
  return `nc${nameColour(name)}`;
}
