/// <reference types="vite/client" />
declare module '*.vue' {
  import type { DefineComponent } from 'vue'
  const component: DefineComponent<object, object, unknown>
  export default component
}
// hls.js ships one set of types; its light build has the same API (minus features cameras lack).
declare module 'hls.js/light' {
  import Hls from 'hls.js'
  export default Hls
}
