import { describe, expect, it } from 'vitest'
import { LiveSession, renewDelay, withToken } from '../src/livetoken'
import type { LiveGrant } from '../src/types'

// A clock and timers the test advances by hand (the session's own scheduling runs for real).
class ManualTime {
  now = 1_800_000_000
  private queue: { at: number; fn: () => void; id: number }[] = []
  private next = 0
  timers = {
    set: (fn: () => void, ms: number) => {
      const id = ++this.next
      this.queue.push({ at: this.now + ms / 1000, fn, id })
      return id
    },
    clear: (id: unknown) => {
      this.queue = this.queue.filter((t) => t.id !== id)
    },
  }
  pending() {
    return this.queue.map((t) => t.at - this.now)
  }
  async advance(seconds: number) {
    const until = this.now + seconds
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at)
      const due = this.queue[0]
      if (!due || due.at > until) break
      this.queue.shift()
      this.now = due.at
      due.fn()
      await new Promise((r) => setTimeout(r, 0))
    }
    this.now = until
  }
}

describe('token renewal', () => {
  it('renews at 80 % of the life, at least 30 s before expiry', () => {
    const grant: LiveGrant = { playlist: '', token: 't', expires: 1600 }
    expect(renewDelay(grant, 1000, 1000)).toBe(480)
    expect(renewDelay({ ...grant, expires: 1060 }, 1000, 1000)).toBe(30)
    expect(renewDelay({ ...grant, expires: 1010 }, 1000, 1000)).toBe(5)
  })

  it('keeps a valid token while it plays: a new grant before each expiry, none after stop', async () => {
    const time = new ManualTime()
    let minted = 0
    const mint = async (): Promise<LiveGrant> => {
      minted += 1
      return { playlist: 'https://toko-1.example/hls/gate/index.m3u8', token: `v1.${time.now + 600}.m${minted}`, expires: time.now + 600 }
    }
    const session = new LiveSession(mint, () => time.now, time.timers)
    const first = await session.start()
    expect(session.sign('https://toko-1.example/hls/gate/3.ts')).toBe(`https://toko-1.example/hls/gate/3.ts?token=${encodeURIComponent(first.token)}`)
    for (let i = 0; i < 5; i += 1) {
      // At every moment the token in use has not expired.
      await time.advance(100)
      expect(session.grant!.expires).toBeGreaterThan(time.now)
    }
    await time.advance(3000)
    expect(session.grant!.expires).toBeGreaterThan(time.now)
    expect(session.renewals).toBeGreaterThanOrEqual(7)
    expect(session.sign('https://x/a.ts')).toContain(`m${minted}`)
    session.stop()
    const count = minted
    await time.advance(5000)
    expect(minted).toBe(count)
    expect(time.pending()).toEqual([])
  })

  it('retries a failed renewal and keeps the token it has', async () => {
    const time = new ManualTime()
    let fail = false
    const mint = async (): Promise<LiveGrant> => {
      if (fail) throw new Error('503')
      return { playlist: 'p', token: `tok-${time.now}`, expires: time.now + 600 }
    }
    const session = new LiveSession(mint, () => time.now, time.timers)
    const first = await session.start()
    fail = true
    await time.advance(481)
    expect(session.grant!.token).toBe(first.token)
    expect(session.error).toContain('503')
    fail = false
    await time.advance(10)
    expect(session.grant!.token).not.toBe(first.token)
    expect(session.error).toBeNull()
  })
})

describe('signed URLs', () => {
  it('sets token= once, keeping other arguments', () => {
    expect(withToken('https://s/hls/gate/index.m3u8?_HLS_msn=3&token=old', 'new')).toBe('https://s/hls/gate/index.m3u8?_HLS_msn=3&token=new')
  })
})
