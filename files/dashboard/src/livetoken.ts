// Live view tokens in the browser: ask head office for one camera's grant, renew it before it
// expires while the tile plays, and put `token=` on every playlist and fragment URL.
import type { LiveGrant } from './types'

/** Seconds from `now` until the grant should be renewed: at 80 % of its life, at least 30 s
 * before it expires, never sooner than 5 s from now. */
export function renewDelay(grant: LiveGrant, issuedAt: number, now: number): number {
  const life = grant.expires - issuedAt
  const at = Math.min(issuedAt + 0.8 * life, grant.expires - 30)
  return Math.max(5, at - now)
}

/** `url` with `token=` set (replacing any earlier token, keeping other arguments). */
export function withToken(url: string, token: string): string {
  const parsed = new URL(url, globalThis.location?.href)
  parsed.searchParams.set('token', token)
  return parsed.toString()
}

type Clock = () => number
type Timers = {
  set: (fn: () => void, ms: number) => unknown
  clear: (handle: unknown) => void
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/** One camera's grant, renewed until `stop()`. `mint` asks the API (POST .../live). */
export class LiveSession {
  grant: LiveGrant | null = null
  renewals = 0
  error: string | null = null
  private handle: unknown = null
  private stopped = false

  constructor(
    private readonly mint: () => Promise<LiveGrant>,
    private readonly now: Clock = () => Date.now() / 1000,
    private readonly timers: Timers = realTimers,
    private readonly onChange: (session: LiveSession) => void = () => {},
  ) {}

  /** The first grant (throws when head office refuses). */
  async start(): Promise<LiveGrant> {
    this.stopped = false
    const grant = await this.fetch()
    return grant
  }

  stop(): void {
    this.stopped = true
    if (this.handle !== null) this.timers.clear(this.handle)
    this.handle = null
  }

  /** The URL to request, with the current token. */
  sign(url: string): string {
    if (!this.grant) throw new Error('no live grant yet')
    return withToken(url, this.grant.token)
  }

  private async fetch(): Promise<LiveGrant> {
    const issuedAt = this.now()
    const grant = await this.mint()
    if (this.stopped) return grant
    this.grant = grant
    this.error = null
    this.onChange(this)
    this.handle = this.timers.set(() => void this.renew(), renewDelay(grant, issuedAt, this.now()) * 1000)
    return grant
  }

  private async renew(): Promise<void> {
    this.handle = null
    try {
      await this.fetch()
      this.renewals += 1
    } catch (e) {
      // Keep the current token (it may still be valid) and try again soon.
      this.error = String(e)
      this.onChange(this)
      if (!this.stopped) this.handle = this.timers.set(() => void this.renew(), 10_000)
    }
  }
}
