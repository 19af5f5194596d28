import { createApp } from 'vue'
import App from './App.vue'
import { loadConfig } from './config'
import { i18n } from './i18n'
import { router } from './router'

document.documentElement.lang = i18n.global.locale.value
void loadConfig().then(() => createApp(App).use(i18n).use(router).mount('#app'))
