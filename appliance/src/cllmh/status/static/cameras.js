// Plays each camera tile's HLS with hls.js (served by the appliance), or natively where the
// browser can (Safari). The session cookie goes with every playlist and fragment request.
document.querySelectorAll("video.live").forEach(function (video) {
  var src = video.dataset.src;
  if (window.Hls && window.Hls.isSupported()) {
    var hls = new window.Hls({ liveSyncDurationCount: 2 });
    hls.loadSource(src);
    hls.attachMedia(video);
    hls.on(window.Hls.Events.ERROR, function (_event, data) {
      if (data.fatal) { setTimeout(function () { hls.loadSource(src); hls.startLoad(); }, 3000); }
    });
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = src;
  }
});
