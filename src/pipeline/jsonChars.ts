// The character codes of JSON's structure, shared by the two scanners that read JSON text without parsing it:
// the dataset reader (dataset.ts: where each element of a file starts and ends) and the text transform
// (transform.ts: uppercasing string values in place).
export const OPEN_BRACE = 0x7b;
export const CLOSE_BRACE = 0x7d;
export const OPEN_BRACKET = 0x5b;
export const CLOSE_BRACKET = 0x5d;
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COMMA = 0x2c;
export const COLON = 0x3a;

/** JSON's insignificant whitespace (RFC 8259): space, line feed, carriage return, tab. */
export function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}
