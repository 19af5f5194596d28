// The events filter's dates, typed the way each language writes them: dd/mm/yyyy in Bahasa
// Indonesia, yyyy-mm-dd in English (no month-first mm/dd/yyyy, which the browser's own date input
// shows for an English-US browser whatever the page's language). An optional time hh:mm follows.

export const DATE_FORMAT: Record<string, string> = { id: 'dd/mm/yyyy', en: 'yyyy-mm-dd' }

const PATTERNS: Record<string, RegExp> = {
  id: /^(?<d>\d{1,2})\/(?<m>\d{1,2})\/(?<y>\d{4})(?:\s+(?<hh>\d{1,2})[:.](?<mm>\d{2}))?$/,
  en: /^(?<y>\d{4})-(?<m>\d{1,2})-(?<d>\d{1,2})(?:\s+(?<hh>\d{1,2}):(?<mm>\d{2}))?$/,
}

export interface Moment {
  unix: number // local time of the browser
  hasTime: boolean
}

/** The typed text as a local moment, or null when it is not a date in `lang`'s format (or not a
 * real day, like 31/02). Empty text is null too. */
export function parseDate(text: string, lang: string): Moment | null {
  const match = (PATTERNS[lang] ?? PATTERNS.id).exec(text.trim())
  if (!match?.groups) return null
  const g = match.groups
  const [y, m, d] = [Number(g.y), Number(g.m), Number(g.d)]
  const [hh, mm] = [Number(g.hh ?? 0), Number(g.mm ?? 0)]
  if (hh > 23 || mm > 59) return null
  const at = new Date(y, m - 1, d, hh, mm)
  if (at.getFullYear() !== y || at.getMonth() !== m - 1 || at.getDate() !== d) return null
  return { unix: Math.floor(at.getTime() / 1000), hasTime: g.hh !== undefined }
}

/** The filter's bounds: "from" at its moment; "until" a whole day ends at the next midnight. */
export function bound(text: string, lang: string, end: boolean): number | undefined {
  const moment = parseDate(text, lang)
  if (!moment) return undefined
  if (!end || moment.hasTime) return moment.unix
  const day = new Date(moment.unix * 1000)
  return Math.floor(new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1).getTime() / 1000)
}

/** A moment written in `lang`'s format (to carry a filter across a language switch). */
export function formatDate(unix: number, lang: string, withTime: boolean): string {
  const at = new Date(unix * 1000)
  const two = (n: number) => String(n).padStart(2, '0')
  const day = lang === 'en'
    ? `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())}`
    : `${two(at.getDate())}/${two(at.getMonth() + 1)}/${at.getFullYear()}`
  return withTime ? `${day} ${two(at.getHours())}:${two(at.getMinutes())}` : day
}
