// Test instrumentation, not page code: the stood-in half of the camera, and a face that performs.
// Before the page's scripts run this wraps getUserMedia: the engine's own devices are opened for
// real (the permission, the microphone and its sound, the errors are the engine's), then the
// video track is replaced by a canvas drawing a real face (the astronaut scene of
// tests/browser/conftest.py) panning slightly, at 20 fps. Stopping the track the page holds
// stops the engine's camera too. Firefox and WebKit have no other way to film a face; Chromium
// gets it too (engines/chromium.py), so that the three engines see the same performing face.
//
// `faceUrl` is the neutral picture (…/face.png); the performing ones are beside it, named
// …/face-<picture>.png (tests/browser/faces.py: mouth, eyes, both, talk1..talk3). One that cannot
// be loaded is shown as the neutral face.
//
// What the face does is read from the page URL's query parameter `perform` (the app ignores it):
//   follow      (default) does as told: in action mode, ~300 ms after a step gets the class `now`,
//               that step's action (icon mouth.svg: mouth open; eyes.svg: eyes closed) for 1.2 s;
//               in number mode, talks (the lips open and close ~4 times a second) while recording
//   still       never moves (a photo)
//   lips-still  the same: reads no digits (number mode without talking)
//   mouth-only  as follow, but only opens the mouth when that is cued (ignores closing the eyes)
//   eyes-only   as follow, but only closes the eyes when that is cued (ignores the mouth)
//   swapped     the wrong order: at step 0's cue does step 1's action, at step 1's step 0's
//   leave       as follow, but from 1.5 s after recording starts the face slides 260 px
//               sideways, out of the oval, and stays out until recording ends
//   cover       as follow, but from 1.5 s after recording starts a hand covers the camera (the
//               picture goes almost black) until recording ends
//   blink-both  at each cue opens the mouth AND closes the eyes at once (whatever is asked), so
//               a check that only looks for the cued action passes both, and one that wants the
//               other action absent fails both
//   unpainted   as follow, but while recording every other picture the page takes of a <video>
//               comes out empty (drawImage draws nothing), as WebKitGTK on a loaded machine hands
//               over frames it has not painted yet: a look that reads black but is no picture
// In number mode every performance but still and lips-still talks; in silent mode none moves.
// Outside the page's 'recording' phase every performance shows the neutral face (coaching before
// recording sees what it always saw). In WebKit the microphone is stood in too (voiceTrack).
(faceUrl) => {
  const devices = navigator.mediaDevices;
  if (!devices?.getUserMedia) return;  // not a secure context: nothing to stand in
  const original = devices.getUserMedia.bind(devices);
  const PICTURES = ['mouth', 'eyes', 'both', 'talk1', 'talk2', 'talk3'];
  const REACT_MS = 300;   // from a cue to the action
  const ACT_MS = 1200;    // how long the action is held
  const LEAVE_MS = 1500;  // `leave`: from the start of recording to the face going
  const LEAVE_PX = 260;
  const SLIDE_MS = 400;
  const WALL = 'rgb(205, 196, 184)';
  // Talking: the mouth's opening (0 closed, 1..3 talk1..talk3) frame by frame (50 ms), looped
  // every second; syllables of uneven length, so a page looking every 100 or 250 ms sees the
  // lips at different openings.
  const TALK = [0, 1, 3, 3, 1, 0, 2, 2, 0, 1, 3, 2, 0, 0, 2, 3, 1, 0, 1, 2];

  let loaded = null;
  const load = (url) => new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`stand-in camera: cannot load ${url}`));
    image.src = url;
  });
  const loadFaces = () => {
    loaded ??= load(faceUrl).then((neutral) => {
      const pictures = { neutral };
      for (const name of PICTURES) {  // in the background; the neutral face until there
        load(faceUrl.replace(/\.png$/, `-${name}.png`)).then((image) => { pictures[name] = image; },
          () => {});
      }
      return pictures;
    });
    return loaded;
  };

  // -- the performer: what the face does now, from what the page shows ------------------------
  function performer() {
    let recordingSince = null;
    let cued = -1;          // the step marked `now` at the last look
    let action = null;      // { picture, from, until }
    return (now) => {
      const perform = new URLSearchParams(location.search).get('perform') || 'follow';
      const root = document.getElementById('capture');
      if (root?.dataset.phase !== 'recording') {
        recordingSince = null;
        cued = -1;
        action = null;
        return { picture: 'neutral', shift: 0 };
      }
      recordingSince ??= now;
      const since = now - recordingSince;
      const shift = perform === 'leave' ? LEAVE_PX * Math.min(Math.max((since - LEAVE_MS) / SLIDE_MS, 0), 1) : 0;
      if (perform === 'cover' && since >= LEAVE_MS) return { picture: 'neutral', shift, covered: true };
      if (perform === 'still' || perform === 'lips-still') return { picture: 'neutral', shift };
      const mode = root.dataset.mode;
      if (mode === 'number') {
        const level = TALK[Math.floor(since / 50) % TALK.length];
        return { picture: level ? `talk${level}` : 'neutral', shift };
      }
      if (mode !== 'action') return { picture: 'neutral', shift };
      const steps = [...document.querySelectorAll('#steps li')];
      const index = steps.findIndex((item) => item.classList.contains('now'));
      if (index !== cued) {
        cued = index;
        const picture = index >= 0 ? respond(perform, index, steps) : null;
        if (picture) action = { picture, from: now + REACT_MS, until: now + REACT_MS + ACT_MS };
      }
      const acting = action && now >= action.from && now < action.until;
      return { picture: acting ? action.picture : 'neutral', shift };
    };
  }

  const actionOf = (item) => {  // the step's icon: …/mouth.svg?v=… or …/eyes.svg?v=…
    const source = item?.querySelector('img')?.getAttribute('src');
    const path = source ? new URL(source, location.href).pathname : '';
    if (path.endsWith('/mouth.svg')) return 'mouth';
    if (path.endsWith('/eyes.svg')) return 'eyes';
    return null;
  };

  /** The picture `perform` answers the cue of step `index` with (null: nothing). */
  function respond(perform, index, steps) {
    const asked = actionOf(steps[index]);
    switch (perform) {
      case 'swapped': return actionOf(steps[1 - index]);
      case 'mouth-only': return asked === 'mouth' ? 'mouth' : null;
      case 'eyes-only': return asked === 'eyes' ? 'eyes' : null;
      case 'blink-both': return 'both';
      default: return asked;  // follow, leave
    }
  }

  function faceTrack(pictures, engineTrack) {
    const canvas = document.createElement('canvas');
    canvas.width = 640;
    canvas.height = 480;
    const context = canvas.getContext('2d', { willReadFrequently: true });
    const started = performance.now();
    const perform = performer();
    // Chromium: frames of a camera (I420, limited range) through a track generator. A canvas's
    // own stream there is full-range RGB made YUV, which Chromium's recorder marks yuvj420p, and
    // the server then re-encodes what a phone's camera has it copy.
    const generator = typeof MediaStreamTrackGenerator === 'function' && typeof VideoFrame === 'function'
      ? new MediaStreamTrackGenerator({ kind: 'video' }) : null;
    const writer = generator?.writable.getWriter();
    const draw = () => {
      const now = performance.now();
      const t = (now - started) / 1000;
      const x = 40 + 12 * Math.sin((2 * Math.PI * t) / 4);
      const y = 40 + 8 * Math.sin((2 * Math.PI * t) / 2);
      const { picture, shift, covered } = perform(now);
      const image = pictures[picture] ?? pictures.neutral;
      if (shift) {
        context.fillStyle = WALL;
        context.fillRect(0, 0, 640, 480);
      }
      context.drawImage(image, x, y, 640, 480, -shift, 0, 640, 480);
      if (covered) {  // a hand on the lens: a little skin-coloured light gets through
        context.fillStyle = 'rgb(14, 9, 7)';
        context.fillRect(0, 0, 640, 480);
      }
      if (writer && writer.desiredSize > 0) {
        writer.write(cameraFrame(context.getImageData(0, 0, 640, 480).data, (now - started) * 1000))
          .catch(() => {});
      }
    };
    draw();
    const timer = setInterval(draw, 50);
    const track = generator ?? canvas.captureStream(20).getVideoTracks()[0];
    const stop = track.stop.bind(track);
    track.stop = () => {  // the page stops what it holds: the engine's camera goes off too
      clearInterval(timer);
      engineTrack.stop();
      writer?.close().catch(() => {});
      stop();
    };
    return track;
  }

  /** An RGBA picture (640x480) as a camera's frame: I420, BT.601 limited range. */
  function cameraFrame(rgba, timestamp) {
    const width = 640;
    const height = 480;
    const data = new Uint8Array(width * height * 3 / 2);
    const u0 = width * height;
    const v0 = u0 + width * height / 4;
    for (let row = 0; row < height; row++) {
      for (let column = 0; column < width; column++) {
        const i = (row * width + column) * 4;
        const r = rgba[i], g = rgba[i + 1], b = rgba[i + 2];
        data[row * width + column] = 16 + ((65.481 * r + 128.553 * g + 24.966 * b) / 255);
        if (!(row & 1) && !(column & 1)) {
          const c = (row >> 1) * (width >> 1) + (column >> 1);
          data[u0 + c] = 128 + ((-37.797 * r - 74.203 * g + 112 * b) / 255);
          data[v0 + c] = 128 + ((112 * r - 93.786 * g - 18.214 * b) / 255);
        }
      }
    }
    return new VideoFrame(data, {
      format: 'I420', codedWidth: width, codedHeight: height, timestamp: Math.round(timestamp),
      colorSpace: { primaries: 'smpte170m', transfer: 'smpte170m', matrix: 'smpte170m', fullRange: false },
    });
  }

  /** WebKit's mock microphone only beeps (70 ms twice a second: under a second of sound in a
   * recording), where a person reading digits is heard for seconds: its track is replaced by the
   * voice-like tone Chromium's fake microphone plays (140 Hz and two harmonics, the loudness
   * swinging 2.2 times a second). Stopping it stops the engine's microphone too. */
  function voiceTrack(engineTrack) {
    const Context = window.AudioContext || window.webkitAudioContext;
    const audio = new Context();
    const out = audio.createMediaStreamDestination();
    const loudness = audio.createGain();
    loudness.gain.value = 0.6;
    const swing = audio.createOscillator();
    const depth = audio.createGain();
    swing.frequency.value = 2.2;
    depth.gain.value = 0.4;
    swing.connect(depth).connect(loudness.gain);
    swing.start();
    [[140, 0.45], [280, 0.27], [420, 0.135]].forEach(([frequency, level]) => {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = frequency;
      gain.gain.value = level;
      tone.connect(gain).connect(loudness);
      tone.start();
    });
    loudness.connect(out);
    audio.resume?.().catch(() => {});
    const [track] = out.stream.getAudioTracks();
    const stop = track.stop.bind(track);
    track.stop = () => {
      engineTrack.stop();
      audio.close().catch(() => {});
      stop();
    };
    return track;
  }

  const webkit = / LivenessTest\//.test(navigator.userAgent);  // engines/webkit.py marks its pages

  const drawImage = CanvasRenderingContext2D.prototype.drawImage;
  let unpainted = false;  // `unpainted`: whether the page's last picture of a <video> came out empty
  CanvasRenderingContext2D.prototype.drawImage = function (source, ...rest) {
    if (source instanceof HTMLVideoElement
        && new URLSearchParams(location.search).get('perform') === 'unpainted'
        && document.getElementById('capture')?.dataset.phase === 'recording') {
      unpainted = !unpainted;
      if (unpainted) return undefined;
    }
    return drawImage.call(this, source, ...rest);
  };

  devices.getUserMedia = async (constraints) => {
    const stream = await original(constraints);
    const [engineTrack] = stream.getVideoTracks();
    if (!engineTrack) return stream;
    const track = faceTrack(await loadFaces(), engineTrack);
    const sound = stream.getAudioTracks().map((t) => (webkit ? voiceTrack(t) : t));
    return new MediaStream([track, ...sound]);
  };
}
