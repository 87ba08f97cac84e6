// A colour per name, picked by the terminal client's hash (triochat/client/render.py):
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

// Fourteen slots and a hash mean that two names in one conversation share a colour
// one time in fourteen (alice and carol do). The page therefore hands out slots as it
// meets names: a name gets its hash's slot, unless a name met earlier has it; then the
// next free one. Until fourteen names are met, no two names on the page look alike; a
// name keeps its slot for as long as the page is open.
const slotOf = new Map(); // lower-cased name -> its slot on this page
const slotsTaken = new Set();

/** The colour slot this page shows `name` in (see above). */
export function pageColour(name) {
  const key = name.toLowerCase();
  let slot = slotOf.get(key);
  if (slot !== undefined) return slot;
  slot = nameColour(name);
  if (slotsTaken.size < NAME_COLOURS) {
    while (slotsTaken.has(slot)) slot = (slot + 1) % NAME_COLOURS;
  }
  slotOf.set(key, slot);
  slotsTaken.add(slot);
  return slot;
}

/** The CSS class that colours `name`. */
export function colourClass(name) {
  return `nc${pageColour(name)}`;
}
