// Ways to get an image: the file picker, drag and drop (the drop zone also opens the
// picker from the keyboard), and the camera. Each hands an ImageBitmap to `onImage`.

export function wireImageInputs({ file, drop, camera, cameraBox, video, snap, stop }, onImage, onError) {
  const fromFile = async (f) => {
    if (!f) return;
    if (!f.type.startsWith('image/')) return onError(`${f.name} is not an image.`);
    try { onImage(await createImageBitmap(f), URL.createObjectURL(f)); } catch { onError(`${f.name} could not be read as an image.`); }
  };
  file.addEventListener('change', () => fromFile(file.files[0]));
  drop.addEventListener('click', () => file.click());
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); file.click(); } });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); fromFile(e.dataTransfer.files[0]); });

  let stream = null;
  const stopCamera = () => { stream?.getTracks().forEach((t) => t.stop()); stream = null; cameraBox.hidden = true; camera.focus(); };
  camera.addEventListener('click', async () => {
    if (!navigator.mediaDevices?.getUserMedia) return onError('This browser has no camera access.');
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    } catch (e) { return onError(`The camera could not be opened: ${e.message}`); }
    video.srcObject = stream;
    cameraBox.hidden = false;
    await video.play();
    snap.focus();
  });
  snap.addEventListener('click', async () => {
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext('2d').drawImage(video, 0, 0);
    onImage(await createImageBitmap(canvas), canvas.toDataURL('image/jpeg'));
  });
  stop.addEventListener('click', stopCamera);
}
