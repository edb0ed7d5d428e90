// QR codes for TOTP enrolment (the only importer of `qrcode`). SVG markup, for
// the page to place inline: the web CSP allows images only from 'self', which
// a data: URL is not, while inline <svg> is part of the document. The markup
// has no style attributes or scripts, so style-src and script-src stay closed.

import QRCode from 'qrcode';

/** Side of the rendered square, in CSS pixels (the viewBox scales it). */
const SIZE_PX = 264;

/** An <svg> element encoding text (error correction M: survives a little glare or blur). */
export function qrSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 4, width: SIZE_PX });
}
