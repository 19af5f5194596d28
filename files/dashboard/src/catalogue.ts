// The appliance's one message catalogue (appliance/src/cllmh/catalogue.json), imported at build
// time: the central API sends an alert's title and detail as message ids with values, and the
// dashboard words them in its language from here. No second copy of those texts in the locales.
import messages from '../../../appliance/src/cllmh/catalogue.json'
import { formatTime } from './i18n'

export type Catalogue = Record<string, Record<string, string>>
export const CATALOGUE: Catalogue = messages

/** A value as the text shows it: `since` is a unix time (local time in the user's locale),
 * numbers in the locale's digits (24,5 in Bahasa Indonesia), anything else as it is. */
function shown(name: string, value: unknown, lang: string): string {
  if (name === 'since' && typeof value === 'number') return formatTime(value, lang)
  if (typeof value === 'number') return new Intl.NumberFormat(lang === 'id' ? 'id-ID' : 'en-GB', { maximumFractionDigits: 1 }).format(value)
  return String(value)
}

/** The message `id` in `lang` with its {placeholders} filled; undefined for an unknown id. */
export function message(id: string, values: Record<string, unknown>, lang: string, catalogue: Catalogue = CATALOGUE): string | undefined {
  const texts = catalogue[id]
  const text = texts?.[lang] ?? texts?.id
  if (text === undefined) return undefined
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in values ? shown(name, values[name], lang) : whole))
}
