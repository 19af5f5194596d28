// The central API (same origin, /api/v1/): session cookie + CSRF token on every POST.
import type { Alert, ClipGrant, EventItem, HistoryPoint, LiveGrant, Me, Site } from './types'

const BASE = '/api/v1'
const CSRF_KEY = 'cllmh.csrf'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (method === 'POST') {
    headers['Content-Type'] = 'application/json'
    headers['X-CSRF-Token'] = sessionStorage.getItem(CSRF_KEY) ?? ''
  }
  const answer = await fetch(BASE + path, {
    method,
    headers,
    credentials: 'same-origin',
    body: method === 'POST' ? JSON.stringify(body ?? {}) : undefined,
  })
  const data = await answer.json().catch(() => ({}))
  if (!answer.ok) {
    if (answer.status === 401) window.dispatchEvent(new CustomEvent('cllmh:logged-out'))
    throw new ApiError(answer.status, data.error ?? answer.statusText)
  }
  return data as T
}

const q = (params: Record<string, string | number | undefined>) => {
  const s = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') s.set(k, String(v))
  const text = s.toString()
  return text ? `?${text}` : ''
}

export const api = {
  async login(username: string, password: string): Promise<Me> {
    const me = await call<Me & { csrf_token: string }>('POST', '/auth/login', { username, password })
    sessionStorage.setItem(CSRF_KEY, me.csrf_token)
    return me
  },
  async logout(): Promise<void> {
    await call('POST', '/auth/logout').catch(() => undefined)
    sessionStorage.removeItem(CSRF_KEY)
  },
  me: () => call<Me>('GET', '/auth/me'),
  sites: () => call<{ sites: Site[] }>('GET', '/sites').then((r) => r.sites),
  site: (name: string) => call<Site>('GET', `/sites/${encodeURIComponent(name)}`),
  history: (name: string) =>
    call<{ bucket_s: number; points: HistoryPoint[] }>('GET', `/sites/${encodeURIComponent(name)}/history`),
  events: (filter: { site?: string; camera?: string; label?: string; since?: number; until?: number; limit?: number }) =>
    call<{ events: EventItem[] }>('GET', `/events${q(filter)}`).then((r) => r.events),
  snapshotUrl: (e: EventItem) => `${BASE}/sites/${encodeURIComponent(e.site)}/events/${e.id}/snapshot.jpg`,
  alerts: (active: 'true' | 'false' | 'all') => call<{ alerts: Alert[] }>('GET', `/alerts${q({ active })}`).then((r) => r.alerts),
  acknowledge: (id: number, comment: string) => call<Alert>('POST', `/alerts/${id}/acknowledge`, { comment }),
  resolve: (id: number, comment: string) => call<Alert>('POST', `/alerts/${id}/resolve`, { comment }),
  clip: (e: EventItem) =>
    call<ClipGrant>('POST', `/sites/${encodeURIComponent(e.site)}/events/${e.id.split('/').map(encodeURIComponent).join('/')}/clip`),
  live: (site: string, camera: string) =>
    call<LiveGrant>('POST', `/sites/${encodeURIComponent(site)}/cameras/${encodeURIComponent(camera)}/live`),
}
