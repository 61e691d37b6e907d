// Test instrumentation, not page code: the stood-in half of the camera in Firefox and WebKit.
// Neither engine can be given a file as its camera, so before the page's scripts run this wraps
// getUserMedia: the engine's own fake devices are opened for real (the permission, the
// microphone and its sound, the errors are the engine's), then the video track is replaced by a
// canvas drawing a real face (the astronaut scene Chromium's y4m shows) panning slightly, at
// 20 fps. Stopping the track the page holds stops the engine's camera too.
(faceUrl) => {
  const devices = navigator.mediaDevices;
  if (!devices?.getUserMedia) return;  // not a secure context: nothing to stand in
  const original = devices.getUserMedia.bind(devices);
  let face = null;
  const loadFace = () => {
    face ??= new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error(`stand-in camera: cannot load ${faceUrl}`));
      image.src = faceUrl;
    });
    return face;
  };

  function faceTrack(image, engineTrack) {
    const canvas = document.createElement('canvas');
    canvas.width = 640;
    canvas.height = 480;
    const context = canvas.getContext('2d');
    const started = performance.now();
    const draw = () => {
      const t = (performance.now() - started) / 1000;
      const x = 40 + 12 * Math.sin((2 * Math.PI * t) / 4);
      const y = 40 + 8 * Math.sin((2 * Math.PI * t) / 2);
      context.drawImage(image, x, y, 640, 480, 0, 0, 640, 480);
    };
    draw();
    const timer = setInterval(draw, 50);
    const track = canvas.captureStream(20).getVideoTracks()[0];
    const stop = track.stop.bind(track);
    track.stop = () => {  // the page stops what it holds: the engine's camera goes off too
      clearInterval(timer);
      engineTrack.stop();
      stop();
    };
    return track;
  }

  devices.getUserMedia = async (constraints) => {
    const stream = await original(constraints);
    const [engineTrack] = stream.getVideoTracks();
    if (!engineTrack) return stream;
    const track = faceTrack(await loadFace(), engineTrack);
    return new MediaStream([track, ...stream.getAudioTracks()]);
  };
}
