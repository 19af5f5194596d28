import { createI18n } from 'vue-i18n'
import en from './locales/en'
import id from './locales/id'

export const LANGUAGES = ['id', 'en'] as const
export type Language = (typeof LANGUAGES)[number]
const KEY = 'cllmh.lang'

function initial(): Language {
  const saved = globalThis.localStorage?.getItem(KEY)
  return saved === 'en' || saved === 'id' ? saved : 'id' // Bahasa Indonesia unless chosen otherwise
}

export const i18n = createI18n({
  legacy: false,
  locale: initial(),
  fallbackLocale: 'id',
  messages: { id, en },
})

export function setLanguage(lang: Language): void {
  i18n.global.locale.value = lang
  localStorage.setItem(KEY, lang)
  document.documentElement.lang = lang
}

/** A unix time as the user's locale writes it (Asia/Jakarta unless the browser says otherwise). */
export function formatTime(unix: number | null | undefined, lang: string): string {
  if (unix === null || unix === undefined) return '—'
  return new Date(unix * 1000).toLocaleString(lang === 'id' ? 'id-ID' : 'en-GB', {
    dateStyle: 'short',
    timeStyle: 'medium',
  })
}
