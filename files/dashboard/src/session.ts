// Who is logged in (null: the login page).
import { ref } from 'vue'
import type { Me } from './types'

export const me = ref<Me | null>(null)
