import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CATALOGUE, message } from '../src/catalogue'

// The kinds as the central API defines them (class Kind in cllmh/central/alerts.py).
function alertKinds(): string[] {
  const alerts = readFileSync(join(__dirname, '../../../appliance/src/cllmh/central/alerts.py'), 'utf8')
  const block = alerts.split('class Kind(StrEnum):')[1].split('\n\n')[0]
  return [...block.matchAll(/= "([a-z_]+)"/g)].map((m) => m[1])
}

const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort()

describe('alert texts from the one catalogue', () => {
  it('has every alert id, title and detail, in both languages with the same values', () => {
    const kinds = alertKinds()
    expect(kinds.length).toBeGreaterThanOrEqual(5)
    for (const kind of kinds) {
      for (const id of [`alert.${kind}`, `alert.${kind}.detail`]) {
        const texts = CATALOGUE[id]
        expect(texts, id).toBeDefined()
        expect(texts.id?.trim(), `${id} id`).toBeTruthy()
        expect(texts.en?.trim(), `${id} en`).toBeTruthy()
        expect(placeholders(texts.id), id).toEqual(placeholders(texts.en))
      }
    }
  })

  it('words an alert in the chosen language with its values in that language', () => {
    const values = { hours: 23.4, floor: 24 }
    expect(message('alert.storage_low.detail', values, 'id')).toBe('Sisa rekaman 23,4 jam (batas 24 jam)')
    expect(message('alert.storage_low.detail', values, 'en')).toBe('23.4 h of recording left (floor 24 h)')
    expect(message('alert.site_silent', {}, 'id')).toBe('Lokasi tidak melapor')
    const since = Date.UTC(2026, 10, 25, 3, 4, 5) / 1000
    const silent = message('alert.site_silent.detail', { since }, 'id') ?? ''
    expect(silent).toMatch(/^Tidak ada laporan sejak \d{2}\/\d{2}\/\d{2}/)
    expect(silent).not.toContain(String(since))
    expect(message('alert.no_such_kind', {}, 'en')).toBeUndefined()
  })
})
