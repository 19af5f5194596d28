import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import { nextTick } from 'vue'
import { createI18n } from 'vue-i18n'
import { createMemoryHistory, createRouter } from 'vue-router'
import { bound, formatDate, parseDate } from '../src/dates'
import en from '../src/locales/en'
import id from '../src/locales/id'
import EventsView from '../src/views/EventsView.vue'

const local = (y: number, m: number, d: number, hh = 0, mm = 0) => new Date(y, m - 1, d, hh, mm).getTime() / 1000

describe('dates as each language writes them', () => {
  it('reads dd/mm/yyyy in Bahasa Indonesia and yyyy-mm-dd in English, with an optional time', () => {
    expect(parseDate('25/11/2026', 'id')).toEqual({ unix: local(2026, 11, 25), hasTime: false })
    expect(parseDate('5/1/2026 07:30', 'id')).toEqual({ unix: local(2026, 1, 5, 7, 30), hasTime: true })
    expect(parseDate('2026-11-25 14:30', 'en')).toEqual({ unix: local(2026, 11, 25, 14, 30), hasTime: true })
    // Month first is not Indonesian: 11/25 has no 25th month; no such day either.
    expect(parseDate('11/25/2026', 'id')).toBeNull()
    expect(parseDate('31/02/2026', 'id')).toBeNull()
    expect(parseDate('25/11/2026', 'en')).toBeNull()
    expect(parseDate('', 'id')).toBeNull()
  })

  it('ends a whole day at the next midnight, a moment at itself', () => {
    expect(bound('25/11/2026', 'id', false)).toBe(local(2026, 11, 25))
    expect(bound('25/11/2026', 'id', true)).toBe(local(2026, 11, 26))
    expect(bound('25/11/2026 14:30', 'id', true)).toBe(local(2026, 11, 25, 14, 30))
    expect(bound('nonsense', 'id', true)).toBeUndefined()
  })

  it('writes a date back in either format', () => {
    expect(formatDate(local(2026, 1, 5, 7, 30), 'id', true)).toBe('05/01/2026 07:30')
    expect(formatDate(local(2026, 1, 5), 'en', false)).toBe('2026-01-05')
  })
})

describe('the events filter', () => {
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/:p(.*)*', component: { template: '<div/>' } }] })

  it('shows dd/mm/yyyy in Bahasa Indonesia, yyyy-mm-dd in English, and carries a typed date across', async () => {
    const i18n = createI18n({ legacy: false, locale: 'id', messages: { id, en } })
    const page = mount(EventsView, { global: { plugins: [i18n, router] } })
    const since = page.get('[data-test="event-since"]')
    expect(since.attributes('type')).toBe('text') // not the browser's date input (mm/dd/yyyy in en-US)
    expect(since.attributes('placeholder')).toBe('dd/mm/yyyy')
    expect(page.get('[data-test="event-until"]').attributes('placeholder')).toBe('dd/mm/yyyy')
    await since.setValue('25/11/2026')
    expect(since.attributes('aria-invalid')).toBe('false')
    await page.get('[data-test="event-until"]').setValue('11/25/2026')
    expect(page.get('[data-test="event-until"]').attributes('aria-invalid')).toBe('true')
    await page.get('form').trigger('submit')
    expect(page.get('[data-test="event-error"]').text()).toBe('Tulis tanggal sebagai dd/mm/yyyy')
    i18n.global.locale.value = 'en'
    await nextTick()
    expect(since.attributes('placeholder')).toBe('yyyy-mm-dd')
    expect((since.element as HTMLInputElement).value).toBe('2026-11-25')
  })
})
