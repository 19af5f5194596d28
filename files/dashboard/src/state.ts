// What a site tile shows, derived from the API's site and alerts (pure: tested without a browser).
import type { Alert, Site, SiteStateLabel } from './types'

export type HoursLevel = 'ok' | 'low' | 'unknown'

export interface SiteView {
  name: string
  region: string
  state: SiteStateLabel
  /** Since when the state holds (offline: the last heartbeat); null when online or never seen. */
  since: number | null
  lastSeen: number | null
  camerasUp: number
  camerasTotal: number
  hoursLeft: number | null
  hoursLevel: HoursLevel
  openAlerts: number
}

export function hoursLevel(hoursLeft: number | null | undefined, floor: number): HoursLevel {
  if (hoursLeft === null || hoursLeft === undefined) return 'unknown'
  return hoursLeft < floor ? 'low' : 'ok'
}

export function siteView(site: Site, alerts: Alert[], floor: number, regions: Record<string, string> = {}): SiteView {
  const cameras = site.cameras ?? []
  // An offline site's last report is stale: its cameras are not known to be up.
  const up = site.online ? cameras.filter((c) => c.stream === 'up').length : 0
  const hoursLeft = site.disk?.hours_left ?? null
  return {
    name: site.name,
    region: regions[site.name] ?? '',
    state: site.state,
    since: site.state === 'offline' ? site.offline_since : null,
    lastSeen: site.last_seen,
    camerasUp: up,
    camerasTotal: cameras.length,
    hoursLeft,
    hoursLevel: hoursLevel(hoursLeft, floor),
    openAlerts: alerts.filter((a) => a.site === site.name && (a.status === 'open' || a.status === 'acknowledged')).length,
  }
}

export type SortKey = 'name' | 'state' | 'hoursLeft' | 'openAlerts' | 'lastSeen'

const STATE_ORDER: Record<SiteStateLabel, number> = { offline: 0, never_seen: 1, online: 2 }

/** Sorted copy: the worst first for state, hours left and alerts; names alphabetically. */
export function sortSites(views: SiteView[], key: SortKey): SiteView[] {
  const byName = (a: SiteView, b: SiteView) => a.name.localeCompare(b.name)
  const compare: Record<SortKey, (a: SiteView, b: SiteView) => number> = {
    name: byName,
    state: (a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || byName(a, b),
    hoursLeft: (a, b) => (a.hoursLeft ?? Infinity) - (b.hoursLeft ?? Infinity) || byName(a, b),
    openAlerts: (a, b) => b.openAlerts - a.openAlerts || byName(a, b),
    lastSeen: (a, b) => (a.lastSeen ?? 0) - (b.lastSeen ?? 0) || byName(a, b),
  }
  return [...views].sort(compare[key])
}

export interface SiteFilter {
  text: string
  state: SiteStateLabel | ''
  region: string
}

export function filterSites(views: SiteView[], filter: SiteFilter): SiteView[] {
  const text = filter.text.trim().toLowerCase()
  return views.filter(
    (v) =>
      (!text || v.name.toLowerCase().includes(text) || v.region.toLowerCase().includes(text)) &&
      (!filter.state || v.state === filter.state) &&
      (!filter.region || v.region === filter.region),
  )
}
