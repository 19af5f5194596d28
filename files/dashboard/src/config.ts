// Settings of this head office, written by the central_api role into config.json beside the build.
import { reactive } from 'vue'

export interface DashboardConfig {
  grafanaUrl: string
  grafanaLokiUid: string
  hoursLeftFloor: number
  regions: Record<string, string>
}

export const config = reactive<DashboardConfig>({ grafanaUrl: '', grafanaLokiUid: 'cllmh-loki', hoursLeftFloor: 24, regions: {} })

export async function loadConfig(): Promise<void> {
  try {
    const answer = await fetch('/config.json', { cache: 'no-cache' })
    if (answer.ok) Object.assign(config, await answer.json())
  } catch {
    // defaults
  }
}

/** Grafana Explore with the site's logs (Loki, last 24 h), or null when no Grafana is configured. */
export function grafanaExploreUrl(base: string, lokiUid: string, site: string): string | null {
  if (!base) return null
  const left = {
    datasource: lokiUid,
    queries: [{ refId: 'A', datasource: { type: 'loki', uid: lokiUid }, expr: `{site="${site}"}` }],
    range: { from: 'now-24h', to: 'now' },
  }
  return `${base.replace(/\/+$/, '')}/explore?orgId=1&left=${encodeURIComponent(JSON.stringify(left))}`
}
