import { flushPromises, mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import { createI18n } from 'vue-i18n'
import EventLarge from '../src/components/EventLarge.vue'
import en from '../src/locales/en'
import id from '../src/locales/id'
import type { ClipGrant, EventItem } from '../src/types'

const person: EventItem = {
  site: 'toko-1', id: 'gate/ev-7', camera: 'gate', start: 1_800_000_000, end: 1_800_000_012, label: 'person',
  labels: { person: 0.9 }, clip_path: 'gate/ev-7/clip.mp4', has_snapshot: true,
}
const SITE_CLIP = 'https://toko-1.sn.mynetname.net/api/v1/events/ev-7/clip.mp4?token=v1.1800000600.abc'

function render(event: EventItem, grant: (e: EventItem) => Promise<ClipGrant>) {
  const i18n = createI18n({ legacy: false, locale: 'id', messages: { id, en } })
  return mount(EventLarge, { props: { event, snapshot: '/api/v1/snap.jpg', grant }, global: { plugins: [i18n] } })
}

describe('an event large', () => {
  it("plays the clip from the site's URL with the token head office granted for it", async () => {
    const asked: EventItem[] = []
    const view = render(person, async (e) => {
      asked.push(e)
      return { url: SITE_CLIP, expires: 1_800_000_600 }
    })
    await flushPromises()
    expect(asked).toEqual([person])
    const video = view.get('[data-test="clip"]')
    expect(video.attributes('src')).toBe(SITE_CLIP)
    expect(video.attributes('poster')).toBe('/api/v1/snap.jpg')
    expect(video.attributes('controls')).toBeDefined()
    expect(view.text()).toContain('Orang · toko-1 / gate')
  })

  it('shows the snapshot and why, when head office grants no clip; asks nothing without a clip', async () => {
    const refused = render(person, async () => {
      throw new Error('no live view configured for site toko-1')
    })
    await flushPromises()
    expect(refused.find('[data-test="clip"]').exists()).toBe(false)
    expect(refused.get('[data-test="large-snapshot"]').attributes('src')).toBe('/api/v1/snap.jpg')
    expect(refused.get('[data-test="clip-error"]').text()).toBe('Klip tidak dapat diputar: no live view configured for site toko-1')
    let asked = 0
    const noClip = render({ ...person, clip_path: null }, async () => {
      asked += 1
      return { url: SITE_CLIP, expires: 0 }
    })
    await flushPromises()
    expect(asked).toBe(0)
    expect(noClip.find('[data-test="clip"]').exists()).toBe(false)
  })
})
