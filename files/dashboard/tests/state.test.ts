import { describe, expect, it } from 'vitest'
import { filterSites, hoursLevel, siteView, sortSites } from '../src/state'
import type { Alert, Site } from '../src/types'

const site = (over: Partial<Site> = {}): Site => ({
  name: 'toko-1',
  state: 'online',
  online: true,
  last_seen: 1_800_000_000,
  offline_since: null,
  revoked: false,
  version: '0.1.0',
  disk: { hours_left: 200 },
  cameras: [
    { name: 'gate', stream: 'up' },
    { name: 'yard', stream: 'down' },
  ],
  ...over,
})

const alert = (over: Partial<Alert> = {}): Alert => ({
  id: 1, site: 'toko-1', kind: 'site_silent', subject: '', detail: '', title: '', title_id: 'alert.site_silent', message: null,
  status: 'open', opened_at: 0,
  closed_at: null, acked_at: null, acked_by: null, ack_comment: null, resolved_at: null, resolved_by: null,
  resolve_comment: null, ...over,
})

describe('a site tile', () => {
  it('shows an online site with its cameras up of total and its hours left above the floor', () => {
    const v = siteView(site(), [], 24)
    expect(v).toMatchObject({ state: 'online', since: null, camerasUp: 1, camerasTotal: 2, hoursLeft: 200, hoursLevel: 'ok', openAlerts: 0 })
  })

  it('shows an offline site since its last heartbeat, with no camera counted up', () => {
    const v = siteView(site({ state: 'offline', online: false, offline_since: 1_800_000_000 }), [], 24)
    expect(v.state).toBe('offline')
    expect(v.since).toBe(1_800_000_000)
    expect(v.camerasUp).toBe(0)
    expect(v.camerasTotal).toBe(2)
  })

  it('colours hours left below the floor, and unknown when the site did not say', () => {
    expect(siteView(site({ disk: { hours_left: 23.9 } }), [], 24).hoursLevel).toBe('low')
    expect(siteView(site({ disk: { hours_left: 24 } }), [], 24).hoursLevel).toBe('ok')
    expect(siteView(site({ disk: null }), [], 24).hoursLevel).toBe('unknown')
    expect(hoursLevel(null, 24)).toBe('unknown')
  })

  it('counts the open and acknowledged alerts of its own site only', () => {
    const alerts = [
      alert({ id: 1 }),
      alert({ id: 2, status: 'acknowledged' }),
      alert({ id: 3, status: 'resolved' }),
      alert({ id: 4, site: 'toko-2' }),
    ]
    expect(siteView(site(), alerts, 24).openAlerts).toBe(2)
  })

  it('shows a never-seen site without a since', () => {
    const v = siteView(site({ state: 'never_seen', online: false, last_seen: null, cameras: [], disk: null }), [], 24)
    expect(v).toMatchObject({ state: 'never_seen', since: null, camerasTotal: 0, hoursLevel: 'unknown' })
  })
})

describe('sorting and filtering sites', () => {
  const views = [
    siteView(site({ name: 'b-ok' }), [], 24),
    siteView(site({ name: 'a-off', state: 'offline', online: false, offline_since: 5 }), [], 24),
    siteView(site({ name: 'c-low', disk: { hours_left: 3 } }), [alert({ site: 'c-low' })], 24, { 'c-low': 'Surabaya' }),
  ]
  it('puts offline sites first by state, the least hours left first, the most alerts first', () => {
    expect(sortSites(views, 'state').map((v) => v.name)).toEqual(['a-off', 'b-ok', 'c-low'])
    expect(sortSites(views, 'hoursLeft').map((v) => v.name)).toEqual(['c-low', 'a-off', 'b-ok'])
    expect(sortSites(views, 'openAlerts')[0].name).toBe('c-low')
  })
  it('filters by text (name or region), state and region', () => {
    expect(filterSites(views, { text: 'sura', state: '', region: '' }).map((v) => v.name)).toEqual(['c-low'])
    expect(filterSites(views, { text: '', state: 'offline', region: '' }).map((v) => v.name)).toEqual(['a-off'])
    expect(filterSites(views, { text: '', state: '', region: 'Surabaya' }).map((v) => v.name)).toEqual(['c-low'])
  })
})
