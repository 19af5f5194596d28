import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import { createI18n } from 'vue-i18n'
import { createMemoryHistory, createRouter } from 'vue-router'
import SiteTile from '../src/components/SiteTile.vue'
import en from '../src/locales/en'
import id from '../src/locales/id'
import { siteView } from '../src/state'
import type { Site } from '../src/types'

const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/:p(.*)*', component: { template: '<div/>' } }] })

function render(site: Site, locale: 'id' | 'en' = 'id') {
  const i18n = createI18n({ legacy: false, locale, messages: { id, en } })
  return mount(SiteTile, { props: { view: siteView(site, [], 24) }, global: { plugins: [i18n, router] } })
}

const base: Site = {
  name: 'toko-1', state: 'online', online: true, last_seen: 1_800_000_000, offline_since: null, revoked: false,
  version: '0.1.0', disk: { hours_left: 200 }, cameras: [{ name: 'gate', stream: 'up' }],
}

describe('the site tile', () => {
  it('shows an online site in Bahasa Indonesia with its cameras and hours left', () => {
    const tile = render(base)
    expect(tile.get('[data-test="site-state"]').text()).toContain('Daring')
    expect(tile.find('[data-test="since"]').exists()).toBe(false)
    expect(tile.get('[data-test="cameras"]').text()).toBe('1/1')
    expect(tile.get('[data-test="hours-left"]').text()).toBe('200 jam')
    expect(tile.get('[data-test="hours-left"]').classes()).toContain('hours-ok')
    expect(tile.get('a').attributes('href')).toBe('/sites/toko-1')
  })

  it('shows an offline site since its last heartbeat, and hours below the floor in red, in English', () => {
    const tile = render({ ...base, state: 'offline', online: false, offline_since: 1_800_000_000, disk: { hours_left: 5.4 } }, 'en')
    expect(tile.get('[data-test="site-state"]').classes()).toContain('state-offline')
    expect(tile.get('[data-test="site-state"]').text()).toContain('Offline')
    expect(tile.get('[data-test="since"]').text()).toMatch(/^since /)
    expect(tile.get('[data-test="cameras"]').text()).toBe('0/1')
    expect(tile.get('[data-test="hours-left"]').text()).toBe('5 h')
    expect(tile.get('[data-test="hours-left"]').classes()).toContain('hours-low')
  })
})
