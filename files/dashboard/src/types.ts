// Shapes of the central API's answers (appliance/src/cllmh/central/README.md).
export type SiteStateLabel = 'online' | 'offline' | 'never_seen'

export interface Camera {
  name: string
  stream: 'up' | 'down' | string
  since?: number | null
  fps?: number | null
  width?: number | null
  height?: number | null
}

export interface Site {
  name: string
  state: SiteStateLabel
  online: boolean
  last_seen: number | null
  offline_since: number | null
  revoked: boolean
  version: string | null
  disk: { hours_left: number | null; free_bytes?: number; total_bytes?: number } | null
  cameras: Camera[]
}

export interface Alert {
  id: number
  site: string
  kind: string
  subject: string
  detail: string // English, for scripts; the page words `message` in its language
  title: string
  title_id: string // the catalogue's id of the kind's title (alert.<kind>)
  message: { id: string; values: Record<string, unknown> } | null // null: opened before the values were kept
  status: 'open' | 'acknowledged' | 'resolved' | 'closed'
  opened_at: number
  closed_at: number | null
  acked_at: number | null
  acked_by: string | null
  ack_comment: string | null
  resolved_at: number | null
  resolved_by: string | null
  resolve_comment: string | null
}

export interface EventItem {
  site: string
  id: string
  camera: string
  start: number
  end: number
  label: string | null
  labels: Record<string, number>
  clip_path: string | null
  has_snapshot: boolean
}

export interface LiveGrant {
  playlist: string
  token: string
  expires: number
}

export interface ClipGrant {
  url: string // the clip at the site, with a token of the event's camera
  expires: number
}

export interface HistoryPoint {
  at: number
  online: boolean
  hours_left: number | null
}

export interface Me {
  user: string
  role: 'viewer' | 'operator' | 'admin'
  sites: string[]
}
