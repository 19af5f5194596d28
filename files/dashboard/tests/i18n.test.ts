import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import en from '../src/locales/en'
import id from '../src/locales/id'

type Tree = { [k: string]: string | Tree }

function keys(tree: Tree, prefix = ''): string[] {
  return Object.entries(tree).flatMap(([k, v]) => (typeof v === 'string' ? [prefix + k] : keys(v, `${prefix}${k}.`)))
}

function lookup(tree: Tree, key: string): string | Tree | undefined {
  return key.split('.').reduce<string | Tree | undefined>((node, part) => (typeof node === 'object' ? node[part] : undefined), tree)
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sources(path) : /\.(vue|ts)$/.test(name) ? [path] : []
  })
}

describe('messages', () => {
  it('has the same keys in Bahasa Indonesia and English, none empty', () => {
    expect(keys(en as Tree).sort()).toEqual(keys(id as Tree).sort())
    for (const k of keys(id as Tree)) {
      expect((lookup(id as Tree, k) as string).trim(), `id: ${k}`).not.toBe('')
      expect((lookup(en as Tree, k) as string).trim(), `en: ${k}`).not.toBe('')
    }
  })

  it('has every key the pages use, in both languages', () => {
    const used = new Set<string>()
    const prefixes = new Set<string>()
    for (const file of sources(join(__dirname, '../src'))) {
      const text = readFileSync(file, 'utf8')
      for (const m of text.matchAll(/\bte?\(\s*'([a-zA-Z_.]+)'/g)) used.add(m[1])
      // t(`state.${...}`): the prefix must be a group of messages
      for (const m of text.matchAll(/\bte?\(\s*`([a-zA-Z_.]+)\.\$\{/g)) prefixes.add(m[1])
    }
    expect(used.size).toBeGreaterThan(40)
    for (const k of used) {
      expect(typeof lookup(id as Tree, k), `id: ${k}`).toBe('string')
      expect(typeof lookup(en as Tree, k), `en: ${k}`).toBe('string')
    }
    for (const p of prefixes) expect(typeof lookup(id as Tree, p), `group ${p}`).toBe('object')
  })

  it('names every site state the API sends (alert texts: the catalogue, tests/catalogue.test.ts)', () => {
    for (const s of ['online', 'offline', 'never_seen']) expect(lookup(en as Tree, `state.${s}`)).toBeTypeOf('string')
  })
})
