import { createRouter, createWebHistory } from 'vue-router'
import { api } from './api'
import { me } from './session'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', name: 'sites', component: () => import('./views/SitesView.vue') },
    { path: '/login', name: 'login', component: () => import('./views/LoginView.vue') },
    { path: '/sites/:name', name: 'site', component: () => import('./views/SiteView.vue'), props: true },
    { path: '/live', name: 'live', component: () => import('./views/LiveView.vue') },
    { path: '/alerts', name: 'alerts', component: () => import('./views/AlertsView.vue') },
    { path: '/events', name: 'events', component: () => import('./views/EventsView.vue') },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
})

router.beforeEach(async (to) => {
  if (to.name === 'login') return true
  if (me.value === null) {
    try {
      me.value = await api.me()
    } catch {
      return { name: 'login', query: { next: to.fullPath } }
    }
  }
  return true
})

window.addEventListener('cllmh:logged-out', () => {
  me.value = null
  if (router.currentRoute.value.name !== 'login') void router.push({ name: 'login' })
})
